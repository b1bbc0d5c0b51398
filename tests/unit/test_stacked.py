"""The supervised stacker (``stacked``): its level-1 features and loss on hand-made rankings, the
fit on stub members (it learns which member to trust), the fallback when a member has no ranking,
the config checks; and the GNN/MLP's refit on a case that lacks feature sets (``adapt_sets``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from model_factories import make_case, make_cases, make_reference
from otlp_aiops import registry
from otlp_aiops.config import ConfigError
from otlp_aiops.rca.base import RankedCauses
from otlp_aiops.rca.gnn import CaseGraph, absent_sets, drop_sets
from otlp_aiops.rca.stacked import (
    StackedConfig,
    StackedRanker,
    feature_names,
    fused_features,
    listnet_loss,
    member_features,
)

SVC = ["a", "b", "c", "d"]


def _r(scores: dict[str, float]) -> RankedCauses:
    return RankedCauses.from_scores(list(scores), list(scores.values()))


def test_member_features_reciprocal_rank_minmax_and_sole_first() -> None:
    x = member_features(SVC, _r({"a": 3.0, "b": 1.0, "c": 1.0}))  # b, c tie (rank 2.5); d unranked (4)
    np.testing.assert_allclose(x, [[1.0, 1.0, 1.0], [0.4, 0.0, 0.0], [0.4, 0.0, 0.0], [0.25, 0.0, 0.0]])
    assert member_features(SVC, None).tolist() == [[0.0] * 3] * 4
    # a tie for first is nobody's sole first place
    assert member_features(SVC, _r(dict.fromkeys(SVC, 1.0)))[:, 2].tolist() == [0.0] * 4


def test_fused_features_are_rrf_its_rank_and_agreement() -> None:
    rr = np.array([[1.0, 0.5], [0.5, 1.0], [1 / 3, 1 / 3]])
    f = fused_features(rr, 0.5)
    both = 1 / 1.5 + 1 / 2.5
    np.testing.assert_allclose(f[:, 0], [both, both, 2 / 3.5])
    np.testing.assert_allclose(f[:, 1], [1 / 1.5, 1 / 1.5, 1 / 3])  # a, b share places 1 and 2
    np.testing.assert_allclose(f[:, 2], [0.5, 0.5, 1 / 9])


def test_listnet_loss_and_gradient_by_hand() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss, grad = listnet_loss(np.array([1.0, 0.0]), [x], [0], 0.0)
    p0 = math.e / (math.e + 1)
    assert loss == pytest.approx(-math.log(p0))
    np.testing.assert_allclose(grad, [p0 - 1, 1 - p0])
    loss2, grad2 = listnet_loss(np.array([1.0, 0.0]), [x], [0], 0.5)
    assert loss2 == pytest.approx(-math.log(p0) + 0.25)
    np.testing.assert_allclose(grad2, [p0 - 0.5, 1 - p0])


class _Stub:
    """A label-free member that ranks by a score table in ``case.extra[key]``."""

    def __init__(self, key: str, fail: bool = False) -> None:
        self.key, self.fail = key, fail

    def fit(self, reference):
        return self

    def rank(self, case):
        if self.fail:
            raise ValueError("no data")
        return RankedCauses.from_scores(case.services, case.extra[self.key])


def _stub_cases(n: int, seed: int):
    """Cases whose root cause the "good" member puts first 9 times in 10 and the "bad" member never."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = make_case(seed=seed * 100 + i, case_id=f"s{seed}-{i}")
        S = len(c.services)
        t = c.services.index(c.root_cause_service)
        good, bad = rng.random(S), rng.random(S)
        if i % 10:
            good[t] = 2.0
        bad[t] = -1.0
        bad[(t + 1) % S] = 2.0
        out.append(dataclasses.replace(c, extra={"good": good, "bad": bad}))
    return out


def _stacked(members=("bad", "good"), fail=(), **kw) -> StackedRanker:
    r = StackedRanker(StackedConfig(members=members, node_evidence=False, **kw))
    r._make_members = lambda: [_Stub(m, m in fail) for m in members]  # type: ignore[method-assign]
    return r


def test_stacked_learns_which_member_to_trust() -> None:
    r = _stacked().fit(make_reference(60), _stub_cases(20, 1))
    w = dict(zip(r.feature_names_, r.weights_, strict=True))
    assert r.feature_names_ == feature_names(r.config)
    assert w["good.rr"] > 0 > w["bad.rr"]
    test = _stub_cases(20, 2)
    hits = [r.rank(c).services[0] == c.root_cause_service for c in test]
    assert np.mean(hits) >= 0.9  # the good member alone: 18/20; reciprocal-rank fusion: less
    assert r.train_info_["converged"] and r.train_info_["n_cases"] == 20


def test_a_member_without_a_ranking_leaves_the_other_to_decide() -> None:
    r = _stacked(fail=("bad",)).fit(make_reference(60), _stub_cases(10, 3))
    case = _stub_cases(1, 4)[0]
    good_order = RankedCauses.from_scores(case.services, case.extra["good"]).services
    assert r.rank(case).services == good_order


def test_set_features_are_relative_to_the_case_and_ranked() -> None:
    r = StackedRanker(StackedConfig(set_kinds=("latency", "cpu"), set_ranks=True))
    case = make_case("payment", "latency", magnitude=30.0)
    x = r.set_features(case)
    assert x.shape == (len(case.services), 4)
    p = case.services.index("payment")
    assert x[p, 0] == 1.0 and x[p, 2] == 1.0  # the largest latency deviation: 1 relative, rank 1
    assert (x[:, :2] <= 1.0).all() and (x[:, :2] >= 0.0).all()
    assert feature_names(r.config)[-4:] == ("set.latency", "set.cpu", "setrr.latency", "setrr.cpu")


@pytest.mark.parametrize(
    "bad",
    [
        {"members": ()},
        {"members": ("nezha", "nezha")},
        {"members": ("ensemble",)},
        {"member_configs": {"tracerca": {}}},
        {"l2": -1.0},
        {"rrf_k": -0.1},
        {"set_kinds": ("speed",)},
        {"set_groups": ("x=a*",), "set_raw_groups": ("x=b*",)},
        {"max_iter": 0},
    ],
)
def test_config_errors(bad) -> None:
    with pytest.raises(ConfigError):
        StackedConfig(**bad)


def test_supervised_members_are_refused() -> None:
    r = registry.create("ranker", "stacked", {"members": ["mlp"]})
    with pytest.raises(ConfigError, match="label-free"):
        r.fit(make_reference(60), make_cases(4))


# ------------------------------------------------------------------ gnn / mlp: adapt_sets


def test_drop_sets_and_absent_sets_by_hand() -> None:
    x = np.arange(16, dtype=np.float32).reshape(2, 8)
    x[:, 3] = 0.0  # set 0 has data (its missing flag is 0)
    out = drop_sets(x, np.array([False, True]))
    miss = np.float32(np.log1p(1.0))
    np.testing.assert_array_equal(out[:, :4], x[:, :4])
    np.testing.assert_allclose(out[:, 4:], [[0, 0, 0, miss]] * 2)
    assert absent_sets(out).tolist() == [False, True]
    assert absent_sets(np.zeros((0, 8), dtype=np.float32)).tolist() == [True, True]


def _without_cpu_memory(case):
    v, ref = case.values.copy(), case.reference.copy()
    v[:, :, 3:] = np.nan
    ref[:, :, 3:] = np.nan
    return dataclasses.replace(case, values=v, reference=ref)


@pytest.mark.parametrize("name", ["mlp", "gnn"])
def test_a_case_lacking_sets_is_ranked_by_a_model_trained_without_them(name) -> None:
    train = make_cases(12, seed=1)
    cfg = {"epochs": 30}
    r = registry.create("ranker", name, cfg, seed=0).fit(make_reference(60), train)
    full = make_cases(2, seed=2)
    for c in full:  # every set present: the fitted model, no refit
        r.rank(c)
    assert not getattr(r, "_adapted", {})
    lacking = [_without_cpu_memory(c) for c in full]
    got = [r.rank(c) for c in lacking]
    assert len(r._adapted) == 1  # one refit for the one combination of absent sets
    # the same as a model trained on cases that never had cpu and memory
    ref = registry.create("ranker", name, cfg, seed=0).fit(
        make_reference(60), [_without_cpu_memory(c) for c in train]
    )
    for c, g in zip(lacking, got, strict=True):
        assert g.services == ref.rank(c).services
    off = registry.create("ranker", name, {**cfg, "adapt_sets": False}, seed=0).fit(make_reference(60), train)
    off.rank(lacking[0])
    assert not getattr(off, "_adapted", {}) and off.train_graphs_ is None


def test_case_graph_replace_keeps_the_target() -> None:
    g = CaseGraph("c", np.zeros((2, 4), dtype=np.float32), np.zeros((2, 0), dtype=np.int64), 1)
    assert dataclasses.replace(g, x=drop_sets(g.x, np.array([True]))).target == 1
