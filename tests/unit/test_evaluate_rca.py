"""RCA metrics (RCAEval's AC@k, Avg@5, MRR) on hand-built rankings with hand-computed values."""

from __future__ import annotations

import logging
import math

import pytest

from otlp_aiops.evaluate.metrics import METRICS, TASKS, metric_spec
from otlp_aiops.evaluate.rca import ac_at_k, aggregate_rca, rca_case_result, rca_long_rows
from otlp_aiops.rca.base import RankedCauses


def _rank(*services: str) -> RankedCauses:
    return RankedCauses(tuple(services), tuple(float(len(services) - i) for i in range(len(services))))


@pytest.fixture
def results(caplog):
    with caplog.at_level(logging.WARNING, logger="otlp_aiops.evaluate.rca"):
        rs = [
            # true cause ranked 1st (cpu)
            rca_case_result("A", _rank("a", "b", "c", "d", "e", "f"), "a", fault_type="cpu", seconds=1.0),
            # ranked 3rd (cpu)
            rca_case_result("B", _rank("b", "c", "a", "d", "e", "f"), "a", fault_type="cpu", seconds=2.0),
            # not ranked at all (mem): a miss at every k, rr 0
            rca_case_result("C", _rank("a", "b", "c"), "z", fault_type="mem", seconds=3.0),
            # ranked 6th (mem): outside the top 5
            rca_case_result("D", _rank("b", "c", "d", "e", "f", "a"), "a", fault_type="mem", seconds=4.0),
        ]
    return rs, caplog.text


def test_per_case_values(results):
    rs, log_text = results
    assert [r.rank for r in rs] == [1, 3, None, 6]
    d = rs[1].as_dict()
    assert d["rank"] == 3 and d["ranked"] is True and d["n_services"] == 6
    assert [d[f"hit_at_{k}"] for k in range(1, 6)] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert d["rr"] == pytest.approx(1 / 3) and d["seconds"] == 2.0
    c = rs[2].as_dict()
    assert c["rank"] is None and c["ranked"] is False and c["rr"] == 0.0
    assert all(c[f"hit_at_{k}"] == 0.0 for k in range(1, 6))
    assert "'z' is not among the 3 ranked services" in log_text


def test_ac_at_k_counts_unranked_cases_as_misses():
    ranks = [1, 3, None, 6, float("nan"), 2]
    assert [ac_at_k(ranks, k) for k in (1, 2, 3, 5, 6)] == [1 / 6, 2 / 6, 3 / 6, 3 / 6, 4 / 6]
    assert ac_at_k([None], 1) == 0.0 and ac_at_k((4,), 4) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        ac_at_k([1], 0)
    with pytest.raises(ValueError, match="no cases"):
        ac_at_k([], 1)


def test_every_metric_written_has_one_row_in_the_metric_table(results):
    rs, _ = results
    written = {r["metric"] for r in rca_long_rows(rs, dataset="d", method="m", seed=0, max_k=10)}
    assert written - set(METRICS) == {"n_services"}  # bookkeeping for the AC@k curve, not a table column
    assert {m.task for m in METRICS.values()} == set(TASKS)
    assert all(m.task == "rca" for n, m in METRICS.items() if n in written)
    assert all(name == m.name for name, m in METRICS.items())
    assert metric_spec("ac_at_3").label == "AC@3" and metric_spec("ac_at_3").higher_is_better
    assert not metric_spec("detection_delay_s").higher_is_better and metric_spec("seconds").decimals == 3
    # a name not in the table is shown as itself, higher is better
    unknown = metric_spec("unheard_of")
    assert (unknown.label, unknown.higher_is_better, unknown.task) == ("unheard_of", True, "")


def test_aggregate_overall_and_per_fault_type(results):
    rs, _ = results
    s = aggregate_rca(rs)
    o = s.overall
    # AC@1 = 1/4, AC@2 = 1/4, AC@3..5 = 2/4; Avg@5 = (0.25+0.25+0.5+0.5+0.5)/5 = 0.4
    assert o["ac_at_1"] == 0.25 and o["ac_at_2"] == 0.25 and o["ac_at_3"] == 0.5 and o["ac_at_5"] == 0.5
    assert o["avg_at_5"] == pytest.approx(0.4, abs=1e-15)
    # MRR = (1 + 1/3 + 0 + 1/6) / 4 = 0.375
    assert o["mrr"] == pytest.approx(0.375, abs=1e-15)
    assert o["seconds"] == 2.5 and o["n_cases"] == 4 and o["n_unranked"] == 1
    cpu, mem = s.by_fault_type["cpu"], s.by_fault_type["mem"]
    assert cpu["ac_at_1"] == 0.5 and cpu["ac_at_3"] == 1.0
    assert cpu["avg_at_5"] == pytest.approx(0.8, abs=1e-15)  # (0.5+0.5+1+1+1)/5
    assert cpu["mrr"] == pytest.approx(2 / 3, abs=1e-15)
    assert mem["ac_at_5"] == 0.0 and mem["avg_at_5"] == 0.0 and mem["n_unranked"] == 1
    assert mem["mrr"] == pytest.approx(1 / 12, abs=1e-15)  # (0 + 1/6)/2
    flat = s.flat()
    assert flat["cpu/ac_at_1"] == 0.5 and flat["avg_at_5"] == o["avg_at_5"]
    assert all("@" not in k for k in flat)  # MLflow rejects '@' in metric names


def test_long_rows_average_to_the_aggregate(results):
    rs, _ = results
    rows = rca_long_rows(rs, dataset="ds", method="baro", seed=3, run_id="r1")
    assert {r["task"] for r in rows} == {"rca"} and {r["seed"] for r in rows} == {3}
    by_metric: dict[str, list[float]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r["value"])
    s = aggregate_rca(rs).overall
    for m in ("ac_at_1", "ac_at_3", "ac_at_5", "avg_at_5", "mrr", "seconds"):
        assert sum(by_metric[m]) / len(by_metric[m]) == pytest.approx(s[m], abs=1e-15), m
    ranks = by_metric["rank"]
    assert ranks[:2] == [1.0, 3.0] and math.isnan(ranks[2]) and ranks[3] == 6.0


def test_bad_inputs_are_rejected():
    r = rca_case_result("A", _rank("a"), "a")
    with pytest.raises(ValueError, match="appear more than once"):
        aggregate_rca([r, r])
    with pytest.raises(ValueError, match="no case results"):
        aggregate_rca([])
    with pytest.raises(ValueError, match="case X: no true root-cause service"):
        rca_case_result("X", _rank("a"), "")
    with pytest.raises(TypeError, match="RankedCauses"):
        rca_case_result("X", ["a"], "a")  # type: ignore[arg-type]
    assert r.fault_type == "unknown"


def test_indicator_level_metrics_share_ranks_on_ties_for_ais_only():
    from otlp_aiops.evaluate.rca import indicator_matches

    r = RankedCauses(("a", "b", "c"), (3.0, 2.0, 1.0),
                     (("a", "metric.cpu_usage.mean", 1.0), ("b", "x -> y", 1.0),
                      ("c", "metric.pod_cpu_utilization.max", 0.5)))
    res = rca_case_result("A", r, "c", fault_type="cpu", root_cause_indicator="pod.cpu.utilization")
    # scores 1.0, 1.0 share rank 1, so the matching row (position 3) has AIS rank 2
    assert (res.indicator_rank, res.indicator_position) == (2, 3)
    assert [res.indicator_hit(k) for k in (1, 2, 3)] == [0.0, 1.0, 1.0]
    assert [res.indicator_hit(k, ties=False) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]
    # another service's row never counts, and a case without an indicator label is not scored
    assert rca_case_result("B", r, "a", root_cause_indicator="pod.cpu.utilization").indicator_rank == 0
    plain = rca_case_result("C", r, "a")
    assert plain.indicator_rank is None and math.isnan(plain.indicator_hit(1))
    s = aggregate_rca([res, plain]).overall
    assert s["ais_at_3"] == 1.0 and s["ind_ac_at_1"] == 0.0 and s["n_indicator_cases"] == 1.0
    assert "ais_at_1" not in aggregate_rca([plain]).overall  # no indicator-level number without labels
    rows = rca_long_rows([res, plain], dataset="d", method="m", seed=0)
    assert [x["value"] for x in rows if x["metric"] == "ais_at_3"] == [1.0]  # only where defined
    # Nezha's pattern labels: X_Y matches "A -> B" with X in A and Y in B
    assert indicator_matches("s c.s.X#31 -> s c.s.X#34", "c.s.X#31_c.s.X#34")
    assert not indicator_matches("s c.s.X#34 -> s c.s.X#31", "c.s.X#31_c.s.X#34")
    assert indicator_matches("r RouteController.queryByIds start -> r r.c.RouteController#53",
                             "RouteController.queryByIds start_r.c.RouteController#53")
    # metric names at a token boundary, in either spelling
    assert indicator_matches("metric.container_cpu_usage.mean", "container.cpu.usage")
    assert not indicator_matches("metric.container_cpu_usage_seconds2.mean", "cpu_usage_seconds")
    assert not indicator_matches("GetCartItems", "GetCart")
