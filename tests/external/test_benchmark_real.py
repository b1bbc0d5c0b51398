"""The baselines on the real datasets, against published numbers where there are any.

* Sock Shop 1 (RCAEval, Pham et al., WWW'25 / ASE'24, Table 5): BARO Avg@5 0.99 (CPU) / 0.99 (MEM).
  Ours must land within ±0.05. A uniformly random ranking over the dataset's 13 services has the
  expected Avg@5 mean(k/13, k = 1..5) = 3/13 ≈ 0.23; RCAEval reports about 0.36 / 0.33 for its
  "Dummy", which ranks metric columns (services with more metrics come first) after dropping the
  columns its preprocessing drops — a different candidate set. The random floor is checked against
  its exact expectation here, over five seeds.
* Nezha Train Ticket day and PetShop low traffic: no published number for these baselines on the
  same cases; the floors below are measured values with a margin, and each must beat random clearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.external, pytest.mark.slow]

PARAMS = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())


def _run(root: Path, dataset: str, method: str, seeds=(0,)) -> dict:
    from otlp_aiops.stages.rca import run_rca

    params = {**PARAMS, "benchmark": {**PARAMS["benchmark"], "seeds": list(seeds), "detection_offsets": ["0s"]}}
    return run_rca(dataset, method, params, root=root, track=False)


def test_sockshop_baro_and_nsigma_match_rcaeval(real_dataset) -> None:
    root = real_dataset("rcd-sockshop")
    baro = _run(root, "rcd-sockshop", "baro")
    nsigma = _run(root, "rcd-sockshop", "nsigma")
    assert baro["n_cases"] == 50 and baro["cpu/n_cases"] == 25 and baro["mem/n_cases"] == 25
    for m in (baro, nsigma):
        assert abs(m["cpu/avg_at_5"] - 0.99) <= 0.05, m
        assert abs(m["mem/avg_at_5"] - 0.99) <= 0.05, m
    rnd = _run(root, "rcd-sockshop", "random", seeds=range(5))
    n_services = 13
    expected = np.mean([k / n_services for k in range(1, 6)])
    assert abs(rnd["avg_at_5"] - expected) <= 0.05, rnd


@pytest.mark.parametrize(("dataset", "floors", "margin"), [
    # measured (2026-11-28, Avg@5): nezha-tt baro 0.14, nsigma 0.11, random 0.06 — the max-z baselines
    # are led astray by Nezha's client-latency quantiles (histogram_quantile saturating at the top bucket,
    # e.g. 1728 s) and log-template counts; petshop baro 0.39, nsigma 0.47, random 0.10
    ("nezha-tt", {"baro": 0.1, "nsigma": 0.08}, 0.03),
    ("petshop", {"baro": 0.3, "nsigma": 0.35}, 0.15),
])
def test_baselines_beat_random_on_nezha_and_petshop(real_dataset, dataset, floors, margin) -> None:
    root = real_dataset(dataset)
    rnd = _run(root, dataset, "random", seeds=range(3))
    for method, floor in floors.items():
        m = _run(root, dataset, method)
        assert m["avg_at_5"] >= floor, (method, m["avg_at_5"])
        assert m["avg_at_5"] >= rnd["avg_at_5"] + margin, (method, m["avg_at_5"], rnd["avg_at_5"])
