"""The label-free ensemble ranker: fractional ranks, reciprocal-rank and score fusion on hand-built
rankings, the tie rule, the config checks, and members built by the registry."""

from __future__ import annotations

import pytest

from model_factories import make_case, make_reference
from otlp_aiops import registry
from otlp_aiops.config import ConfigError
from otlp_aiops.rca.base import RankedCauses
from otlp_aiops.rca.ensemble import EnsembleConfig, EnsembleRanker, fractional_ranks

SVC = ("a", "b", "c", "d")


def _r(scores: dict[str, float], indicators=()) -> RankedCauses:
    return RankedCauses.from_scores(list(scores), list(scores.values()), indicators)


def test_fractional_ranks_share_ties_and_put_missing_services_last() -> None:
    r = _r({"a": 3.0, "b": 1.0, "c": 1.0})  # b, c tie for places 2 and 3
    assert fractional_ranks(r, ["a", "b", "c", "d", "e"]).tolist() == [1.0, 2.5, 2.5, 4.5, 4.5]
    assert fractional_ranks(_r({"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}), SVC).tolist() == [2.5] * 4


def test_rrf_sums_reciprocal_ranks() -> None:
    e = EnsembleRanker(EnsembleConfig(members=("m1", "m2"), k=1.0))
    m1 = _r({"a": 4, "b": 3, "c": 2, "d": 1})  # ranks a1 b2 c3 d4
    m2 = _r({"c": 4, "b": 3, "a": 2, "d": 1})  # ranks c1 b2 a3 d4
    out = e.fuse(SVC, [m1, m2])
    # a: 1/2 + 1/4 = 0.75, c: the same, b: 1/3 + 1/3, d: 2/5; a and c tie: the first member's rank decides
    assert out.services == ("a", "c", "b", "d")
    assert out.scores == pytest.approx((0.75, 0.75, 2 / 3, 0.4))
    # with the members the other way round, c wins the tie
    assert e.fuse(SVC, [m2, m1]).services == ("c", "a", "b", "d")


def test_rrf_k_moves_from_first_places_to_consensus() -> None:
    m1 = _r({"a": 4, "b": 3, "c": 2, "d": 1})  # a1 b2 c3 d4
    m2 = _r({"d": 4, "b": 3, "c": 2, "a": 1})  # d1 b2 c3 a4
    small = EnsembleRanker(EnsembleConfig(members=("x", "y"), k=0.0)).fuse(SVC, [m1, m2])
    large = EnsembleRanker(EnsembleConfig(members=("x", "y"), k=100.0)).fuse(SVC, [m1, m2])
    # k=0: a = d = 1 + 1/4 = 1.25 beat b = 1/2 + 1/2 = 1; k=100: b's two second places beat (1, 4)
    assert small.services == ("a", "d", "b", "c") and small.scores[:3] == pytest.approx((1.25, 1.25, 1.0))
    assert large.services == ("b", "a", "d", "c")
    assert large.scores[:2] == pytest.approx((2 / 102, 1 / 101 + 1 / 104))


def test_a_members_ties_do_not_vote() -> None:
    # m2 ties every service: the fused order is m1's alone (name order would favour a)
    m1 = _r({"d": 3, "c": 2, "b": 1, "a": 0})
    m2 = _r(dict.fromkeys(SVC, 0.5))
    out = EnsembleRanker(EnsembleConfig(members=("m2", "m1"), k=1.0)).fuse(SVC, [m2, m1])
    assert out.services == ("d", "c", "b", "a")


def test_score_rule_sums_min_max_scores_with_weights() -> None:
    m1 = _r({"a": 10.0, "b": 5.0, "c": 0.0, "d": 0.0})  # 1, .5, 0, 0
    m2 = _r({"a": 0.0, "b": 1.0, "c": 3.0, "d": float("nan")})  # 0, 1/3, 1, 0 (NaN: the lowest)
    out = EnsembleRanker(EnsembleConfig(members=("m1", "m2"), rule="score", weights=(1.0, 2.0))).fuse(SVC, [m1, m2])
    assert out.services == ("c", "b", "a", "d")
    assert out.scores == pytest.approx((2.0, 0.5 + 2 / 3, 1.0, 0.0))


def test_indicators_follow_the_fused_order_then_the_member_order() -> None:
    m1 = _r({"a": 2, "b": 1}, indicators=(("a", "log.x", 5.0), ("b", "cpu", 1.0)))
    m2 = _r({"b": 2, "a": 1}, indicators=(("b", "gap", 9.0), ("a", "log.x", 4.0), ("a", "mem", 3.0)))
    out = EnsembleRanker(EnsembleConfig(members=("m1", "m2"), top_indicators=3)).fuse(("a", "b"), [m1, m2])
    assert out.services == ("a", "b")
    assert out.indicators == (("a", "log.x", 5.0), ("a", "mem", 3.0), ("b", "cpu", 1.0))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"members": ()}, "at least one"),
    ({"members": ("nsigma", "nsigma")}, "twice"),
    ({"members": ("ensemble",)}, "own member"),
    ({"rule": "borda"}, "rule"),
    ({"k": -1.0}, "k:"),
    ({"weights": (1.0,)}, "weights"),
    ({"member_configs": {"baro": {}}}, "not among"),
])
def test_config_is_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EnsembleConfig(**kwargs)


def test_supervised_members_are_refused() -> None:
    r = registry.create("ranker", "ensemble", {"members": ["nsigma", "mlp"]})
    with pytest.raises(ConfigError, match="supervised"):
        r.fit(make_reference())


def test_members_are_built_with_their_own_configs_and_fused() -> None:
    case = make_case("currency", "cpu", seed=2)
    cfg = {"members": ["multimodal", "nsigma"], "k": 1.0,
           "member_configs": {"nsigma": {"top_indicators": 3}, "multimodal": {"resource_kinds": ["cpu"]}}}
    r = registry.create("ranker", "ensemble", cfg).fit(make_reference())
    assert [type(m).name for m in r.members_] == ["multimodal", "nsigma"]
    assert r.members_[0].config.resource_kinds == ("cpu",) and r.members_[1].config.top_indicators == 3
    with pytest.raises(ConfigError, match="resource_kindz"):
        registry.create("ranker", "ensemble", {"members": ["multimodal"],
                                               "member_configs": {"multimodal": {"resource_kindz": []}}}).fit(None)
    ranking = r.rank(case)
    singles = r.member_rankings(case)
    assert ranking.services[0] == "currency" == singles[0].services[0] == singles[1].services[0]
    assert ranking.scores[0] == pytest.approx(1.0)  # 1/(1+1) from each member
    assert set(ranking.services) == set(case.services)
    assert ranking.indicators[0][0] == "currency"


def test_params_yaml_members_take_their_own_sections() -> None:
    from pathlib import Path

    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    sec = params["rca"]["ensemble"]
    changed = {}
    for m in sec["members"]:
        mine, own = sec["member_configs"][m], params["rca"][m]
        assert set(mine) == set(own), m
        changed[m] = {k: mine[k] for k in mine if mine[k] != own[k]}
    # the one member setting chosen for the ensemble on the simulators (docs/rca-methods.md)
    assert changed == {"multimodal": {"sustain_windows": 3}, "nezha": {}}


def test_saved_ensemble_loads_with_its_members(tmp_path) -> None:
    case = make_case("cart", "latency", seed=3)
    r = registry.create("ranker", "ensemble", {"members": ["nsigma", "multimodal"], "rule": "score",
                                               "member_configs": {"nsigma": {"top_indicators": 2}}}).fit(make_reference())
    r.save(tmp_path / "m")
    back = registry.load_model(tmp_path / "m", "ranker")
    assert back.config == r.config and back.members_[0].config.top_indicators == 2
    assert back.rank(case) == r.rank(case)


def test_multimodal_sustained_evidence_over_runs_of_windows() -> None:
    """A 3-window fault in a 10-window post-onset part: the median over all windows reads 0, the
    largest median over runs of 3 reads the fault's level (``sustain_windows``)."""
    import numpy as np

    from otlp_aiops.rca.multimodal import MultimodalConfig, MultimodalRanker

    a = np.zeros((10, 1, 1))
    a[2:5, 0, 0] = [4.0, 6.0, 5.0]
    a[8, 0, 0] = 9.0  # a lone spike: not sustained
    assert MultimodalRanker(MultimodalConfig())._sustained(a)[0, 0] == 0.0
    assert MultimodalRanker(MultimodalConfig(sustain_windows=3))._sustained(a)[0, 0] == 5.0
    assert MultimodalRanker(MultimodalConfig(sustain_windows=20))._sustained(a)[0, 0] == 0.0
    with pytest.raises(ConfigError, match="sustain_windows"):
        MultimodalConfig(sustain_windows=-1)
