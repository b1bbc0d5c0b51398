"""The features stage on the converted Nezha Train Ticket day (../shared/datasets/nezha-tt): the graph
holds the known Train Ticket calls and every one of the 28 cases has data in its window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.external, pytest.mark.slow]

ADAPTER = "otlp_aiops.datasets.adapters.nezha"


@pytest.fixture(scope="module")
def nezha_features(real_dataset) -> Path:
    return real_dataset("nezha-tt") / "data" / "features" / "nezha-tt"


def test_graph_has_the_train_ticket_calls(nezha_features: Path) -> None:
    from otlp_aiops.features.store import load_graph

    g = load_graph(nezha_features)
    edges = set(g.edges)
    # the gateway fronts the user-facing services; travel and preserve call the booking back end
    fronted = {b for a, b in edges if a == "ts-gateway-service"}
    assert {"ts-auth-service", "ts-travel-service", "ts-travel2-service", "ts-preserve-service",
            "ts-cancel-service", "ts-execute-service", "ts-food-service"} <= fronted, sorted(fronted)  # fmt: skip
    assert {("ts-travel-service", "ts-basic-service"), ("ts-travel-service", "ts-seat-service"),
            ("ts-basic-service", "ts-station-service"), ("ts-basic-service", "ts-train-service"),
            ("ts-preserve-service", "ts-order-service"), ("ts-seat-service", "ts-config-service"),
            ("ts-auth-service", "ts-verification-code-service")} <= edges  # fmt: skip
    callers = {a for a, _ in edges}
    assert callers - {b for _, b in edges} == {"ts-gateway-service"}  # nothing calls the gateway
    assert g.edge_index().shape == (2, len(g.edges))


def test_every_case_has_data(nezha_features: Path) -> None:
    from otlp_aiops.features.store import load_cases

    cases = load_cases(nezha_features)
    assert len(cases) == 28
    for c in cases:
        after = c.after()
        assert not np.isnan(after).all(), f"{c.case_id}: no data after the onset"
        assert not np.isnan(c.baseline()).all(), f"{c.case_id}: no fault-free baseline"
        assert c.root_cause_service in c.services, c.case_id
        # the adapter declares ts-ui-dashboard (front_service.csv), which has no traced call; the walk
        # needs the graph's entry, the gateway
        assert c.symptom_service == "ts-gateway-service"
    meta = json.loads((nezha_features / "meta.json").read_text())
    assert meta["symptom_service_declared"] == "ts-ui-dashboard"
