"""The supervised rankers ``gnn`` and ``mlp`` and their node features: exact feature values on a
hand-built case, quality floors on disjoint synthetic incidents, determinism, save → load, transfer
across feature names, and the CUDA path (``gpu``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import model_factories as mf
from otlp_aiops import registry
from otlp_aiops.config import ConfigError
from otlp_aiops.evaluate.rca import ac_at_k
from otlp_aiops.features.data import CaseData, ServiceGraph
from otlp_aiops.rca.node_features import node_features, robust_z_soft_floor
from otlp_aiops.registry import load_model

torch = pytest.importorskip("torch")

NAN = np.nan


# ----------------------------------------------------------------------------------- node features


def _hand_case() -> CaseData:
    """3 services, 4 features (two latency, one cpu, one logs); 5 reference windows, 1 before, 2 after."""
    services = ("a", "b", "c")
    features = ("span.server_latency_p90", "metric.latency", "metric.cpu", "log.error")
    kinds = ("latency", "latency", "cpu", "logs")
    ref = np.full((5, 3, 4), NAN)
    ref[:, 0, 0] = [10, 12, 14, 16, 18]  # median 14, MAD 2
    ref[:, 0, 1] = [1, 1, 1, 1, 1]  # MAD 0: the eps floors decide
    ref[:, 0, 2] = [0.3, 0.4, 0.5, 0.6, 0.7]  # median 0.5, MAD 0.1
    ref[:, 1, 1] = [20, 22, 24, 26, 28]  # median 24, MAD 2
    ref[:, 1, 2] = [1, 2, 3, 4, 5]  # median 3, MAD 1
    ref[:, :, 3] = 0.0
    vals = np.full((3, 3, 4), NAN)
    vals[0] = 1e9  # before the onset: ignored, the reference is the baseline
    vals[1:, 0, 0] = [20, 14]
    vals[1:, 0, 1] = [1, 1.5]
    vals[1:, 0, 2] = [0.5, 0.2]
    vals[1:, 1, 1] = [30, NAN]
    vals[1:, 1, 2] = [3, 5]
    vals[1:, 2, 0] = [7, 8]  # c has no baseline for it: unusable
    vals[1:, :, 3] = 0.0
    t0 = np.datetime64("2026-01-01T00:00:00", "ns")
    step = np.timedelta64(60, "s")
    return CaseData("hand", "hand", services, features, kinds, t0 + np.arange(3) * step, vals, 1,
                    t0 - np.arange(5, 0, -1) * step, ref, ServiceGraph(services, (("a", "b"), ("b", "c"))),
                    root_cause_service="b")


def test_node_features_kinds_exact_values():
    nf = node_features(_hand_case())
    assert nf.services == ("a", "b", "c")
    assert nf.columns[:8] == ("latency.max_abs", "latency.mean_abs", "latency.mean", "latency.missing",
                              "errors.max_abs", "errors.mean_abs", "errors.mean", "errors.missing")
    assert len(nf.columns) == 20 and nf.x.shape == (3, 20)
    col = {c: i for i, c in enumerate(nf.columns)}

    def row(s: int, kind: str) -> list[float]:
        return [nf.x[s, col[f"{kind}.{st}"]] for st in ("max_abs", "mean_abs", "mean", "missing")]

    # a: span latency z = 6 / (1.4826·2 + 1e-6 + 1e-3·14) and 0; metric latency has MAD 0, its scale is
    # 1e-6 + 1e-3·1, so 0.5 / 0.001001 = 499.5 is clipped to 100 and it dominates every statistic
    assert row(0, "latency") == pytest.approx([100.0, 50.0, 50.0, 0.0], rel=1e-12)
    s_cpu_a = 1.4826 * 0.1 + 1e-6 + 1e-3 * 0.5
    assert row(0, "cpu") == pytest.approx([0.3 / s_cpu_a, 0.15 / s_cpu_a, -0.15 / s_cpu_a, 0.0], rel=1e-12)
    # b: no span latency at all, metric latency has one finite post-onset window
    s_lat_b = 1.4826 * 2 + 1e-6 + 1e-3 * 24
    assert row(1, "latency") == pytest.approx([6 / s_lat_b, 6 / s_lat_b, 6 / s_lat_b, 0.0], rel=1e-12)
    s_cpu_b = 1.4826 * 1 + 1e-6 + 1e-3 * 3
    assert row(1, "cpu") == pytest.approx([2 / s_cpu_b, 1 / s_cpu_b, 1 / s_cpu_b, 0.0], rel=1e-12)
    # c: nothing usable; errors, traffic, memory exist for nobody
    assert row(2, "latency") == [0.0, 0.0, 0.0, 1.0]
    assert row(2, "cpu") == [0.0, 0.0, 0.0, 1.0]
    for kind in ("errors", "traffic", "memory"):
        assert nf.x[:, col[f"{kind}.missing"]].tolist() == [1.0, 1.0, 1.0]
        assert nf.x[:, col[f"{kind}.max_abs"]].tolist() == [0.0, 0.0, 0.0]
    assert nf.top_feature == ("metric.latency", "metric.latency", "log.error")  # c: flat but present
    assert nf.top_level == pytest.approx([50.0, 6 / s_lat_b, 0.0], rel=1e-12)
    assert np.isfinite(nf.x).all()


def test_node_features_all_mode_and_span_latency():
    nf = node_features(_hand_case(), "all")
    assert nf.x.shape == (3, 16)
    assert nf.columns[:4] == ("span.server_latency_p90.max_abs", "span.server_latency_p90.mean_abs",
                              "span.server_latency_p90.mean", "span.server_latency_p90.missing")
    s = 1.4826 * 2 + 1e-6 + 1e-3 * 14
    assert nf.x[0, :4] == pytest.approx([6 / s, 3 / s, 3 / s, 0.0], rel=1e-12)
    assert nf.x[1, :4].tolist() == [0.0, 0.0, 0.0, 1.0]  # b has no span latency
    assert nf.x[2, :4].tolist() == [0.0, 0.0, 0.0, 1.0]  # c has no baseline for it
    assert nf.x[:, 12:16].tolist() == [[0.0, 0.0, 0.0, 0.0]] * 3  # log.error: flat, present, unchanged


def test_groups_and_raw_groups_exact_values():
    case = _hand_case()
    nf = node_features(case, groups=["lat=span.server_latency_*|metric.latency"], raw_groups=["err=log.*"])
    assert nf.columns[20:] == ("lat.max_abs", "lat.mean_abs", "lat.mean", "lat.missing",
                               "err.max_abs", "err.mean_abs", "err.mean", "err.missing")
    # the group holds both latency features: the same numbers as the latency kind
    assert nf.x[:, 20:24].tolist() == nf.x[:, 0:4].tolist()
    # raw: log.error is 0 after the onset for every service — its values as they are, not a z
    assert nf.x[:, 24:28].tolist() == [[0.0, 0.0, 0.0, 0.0]] * 3
    raised = dataclasses.replace(case, values=case.values.copy())
    raised.values[1:, 1, 3] = [2.0, -500.0]  # b: a score of 2, then one beyond the clip
    nf2 = node_features(raised, raw_groups=["err=log.*"], z_clip=100.0)
    assert nf2.x[1, 20:24].tolist() == [100.0, 51.0, -49.0, 0.0]
    with pytest.raises(ValueError, match="name=glob"):
        node_features(case, groups=["nameless"])
    with pytest.raises(ConfigError, match="twice"):
        registry.create("ranker", "gnn", {"groups": ["a=x*"], "raw_groups": ["a=y*"]})


def test_robust_z_soft_floor_uses_before_windows_without_reference_and_clips():
    case = dataclasses.replace(_hand_case(), reference=np.zeros((0, 3, 4)),
                               reference_times=np.zeros(0, "M8[ns]"))
    assert case.baseline().shape == (1, 3, 4)  # the 1e9 window is now the baseline
    nf = node_features(case, z_clip=5.0)
    assert nf.x[0, 0] == 5.0  # |20 - 1e9| / (0 + 1e-6 + 1e-3·1e9) ≈ 1e6, clipped to 5
    z = robust_z_soft_floor(np.array([[3.0], [NAN]]), np.array([[1.0], [2.0], [3.0]]), eps=0.0, rel_eps=0.0)
    assert z[0, 0] == pytest.approx(1 / 1.4826, rel=1e-12) and np.isnan(z[1, 0])
    # MAD 0 but not constant: the standard deviation (0.4) stands in, unless std_fallback is off
    sparse = np.array([[0.0], [0.0], [0.0], [0.0], [1.0]])
    assert robust_z_soft_floor(np.array([[1.0]]), sparse)[0, 0] == pytest.approx(1 / (0.4 + 1e-6), rel=1e-12)
    assert robust_z_soft_floor(np.array([[1.0]]), sparse, std_fallback=False)[0, 0] == 100.0


# ----------------------------------------------------------------------------------- rankers


@pytest.fixture(scope="module")
def split():
    return mf.make_cases(40, seed=1), mf.make_cases(20, seed=2)


@pytest.fixture(scope="module")
def fitted(split):
    train, _ = split
    return {name: registry.create("ranker", name, seed=0).fit(None, train) for name in ("gnn", "mlp")}


def _acc(ranker, cases, k):
    return ac_at_k([ranker.rank(c).rank_of(c.root_cause_service) for c in cases], k)


@pytest.mark.parametrize("name", ["gnn", "mlp"])
def test_quality_floor_on_disjoint_cases(fitted, split, name):
    # measured: top-1 1.00 and top-3 1.00 for both (seeds 0-2); a random ranking gets ~0.17 / 0.5
    _, test = split
    assert _acc(fitted[name], test, 1) >= 0.85
    assert _acc(fitted[name], test, 3) >= 0.95
    info = fitted[name].train_info_
    assert info["n_train"] + info["n_val"] == 40 and info["n_val"] == 8 and info["skipped_cases"] == 0
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= 300


def test_ranking_contract_and_labels_unread(fitted, split):
    case = split[1][0]
    r = fitted["gnn"].rank(case)
    assert sorted(r.services) == sorted(case.services)
    assert list(r.scores) == sorted(r.scores, reverse=True)
    assert np.exp(r.scores).sum() == pytest.approx(1.0)  # log-probabilities over the case's services
    assert r.indicators[0][0] == r.services[0] and r.indicators[0][1] in case.features
    blind = dataclasses.replace(case, root_cause_service=None, root_cause_indicator=None, fault_type=None)
    assert fitted["gnn"].rank(blind) == r


@pytest.mark.parametrize("name", ["gnn", "mlp"])
def test_deterministic_under_seed(fitted, split, name):
    train, test = split
    again = registry.create("ranker", name, seed=0).fit(None, train)
    other = registry.create("ranker", name, seed=1).fit(None, train)
    for case in test[:5]:
        assert again.rank(case) == fitted[name].rank(case)
    assert any(other.rank(c).scores != fitted[name].rank(c).scores for c in test[:5])


@pytest.mark.parametrize("name", ["gnn", "mlp"])
def test_save_load_identical(fitted, split, tmp_path, name):
    fitted[name].save(tmp_path / name)
    loaded = load_model(tmp_path / name, "ranker")
    assert type(loaded) is type(fitted[name]) and loaded.config == fitted[name].config and loaded.seed == 0
    assert all(isinstance(v, np.ndarray) for v in loaded.weights_.values())
    for case in split[1]:
        assert loaded.rank(case) == fitted[name].rank(case)


def test_fit_needs_train_cases_and_skips_unlabelled(split):
    gnn = registry.create("ranker", "gnn", {"epochs": 3})
    with pytest.raises(ValueError, match="train_cases"):
        gnn.fit(None, [])
    train = list(split[0][:6])
    train[0] = dataclasses.replace(train[0], root_cause_service="not-a-service")
    train[1] = dataclasses.replace(train[1], root_cause_service=None)
    gnn.fit(None, train)
    info = gnn.train_info_
    assert info["skipped_cases"] == 2 and info["n_train"] + info["n_val"] == 4
    with pytest.raises(ValueError, match="none of the 2 training cases"):
        registry.create("ranker", "gnn", {"epochs": 3}).fit(None, train[:2])
    with pytest.raises(RuntimeError, match="not fitted"):
        registry.create("ranker", "mlp").rank(split[1][0])


def test_config_is_strict():
    with pytest.raises(ConfigError, match="bogus"):
        registry.create("ranker", "gnn", {"bogus": 1})
    with pytest.raises(ConfigError, match="conv"):
        registry.create("ranker", "mlp", {"conv": "gat"})  # the MLP has no conv
    with pytest.raises(ConfigError, match="conv"):
        registry.create("ranker", "gnn", {"conv": "gcn2"})
    with pytest.raises(ConfigError, match="feature_mode"):
        registry.create("ranker", "gnn", {"feature_mode": "names"})
    with pytest.raises(ConfigError, match="kinds"):
        registry.create("ranker", "mlp", {"kinds": ["latency", "power"]})
    gat = registry.create("ranker", "gnn", {"conv": "gat", "hidden": 16, "layers": 3, "kinds": ["latency"]})
    assert gat.config.conv == "gat" and gat.config.kinds == ("latency",) and gat.config.device == "cpu"
    with pytest.raises(ConfigError, match="device"):
        registry.create("ranker", "gnn", {"device": "tpu"})


def _renamed(case: CaseData) -> CaseData:
    names = tuple(f"other.{i}_{k}" for i, k in enumerate(case.feature_kinds))
    return dataclasses.replace(case, features=names, dataset="elsewhere")


def test_transfer_across_feature_names(fitted, split):
    for case in split[1][:6]:
        renamed = _renamed(case)
        a, b = fitted["gnn"].rank(case), fitted["gnn"].rank(renamed)
        assert a.services == b.services and a.scores == b.scores
        assert fitted["mlp"].rank(renamed).services == fitted["mlp"].rank(case).services
    # feature_mode=all is tied to one dataset's feature names
    tied = registry.create("ranker", "gnn", {"feature_mode": "all", "epochs": 3}).fit(None, split[0][:6])
    tied.rank(split[1][0])
    with pytest.raises(ValueError, match="feature_mode=kinds"):
        tied.rank(_renamed(split[1][0]))


def test_service_order_does_not_matter(fitted, split):
    case = split[1][3]
    perm = [5, 2, 0, 4, 1, 3]
    shuffled = dataclasses.replace(case, services=tuple(case.services[i] for i in perm),
                                   values=case.values[:, perm], reference=case.reference[:, perm])
    for name in ("gnn", "mlp"):
        a, b = fitted[name].rank(case), fitted[name].rank(shuffled)
        assert a.services == b.services and a.scores == pytest.approx(b.scores, rel=1e-5)  # float32 sums


def test_gnn_passes_messages_both_ways_and_mlp_ignores_edges(fitted, split):
    from otlp_aiops.rca.gnn import listwise_loss

    case = split[1][0]
    g, _ = fitted["gnn"]._case_graph(case)
    x, ei = torch.from_numpy(g.x), torch.from_numpy(g.edge_index)
    with torch.no_grad():
        gnn, mlp = fitted["gnn"]._cpu_module(), fitted["mlp"]._cpu_module()
        base = gnn(x, ei)
        assert not torch.allclose(base, gnn(x, ei[:, :0]))
        # a leaf (redis) only hears its caller, the root (frontend) only its callees
        leaf, top = case.services.index("redis"), case.services.index("frontend")
        x2 = x.clone()
        x2[case.services.index("cart")] += 1.0
        moved = gnn(x2, ei)
        assert moved[leaf] != base[leaf] and moved[top] != base[top]
        assert torch.equal(mlp(x, ei), mlp(x, ei[:, :0]))
    # the listwise loss: mean over cases of -log softmax over the case's nodes at the target
    logits = torch.tensor([1.0, 2.0, 3.0, 0.0, 5.0])
    batch = torch.tensor([0, 0, 0, 1, 1])
    want = (-(2.0 - np.log(np.exp(1) + np.exp(2) + np.exp(3))) - (0.0 - np.log(1 + np.exp(5)))) / 2
    assert float(listwise_loss(logits, batch, torch.tensor([1, 0]))) == pytest.approx(want, rel=1e-6)


@pytest.mark.gpu
def test_trains_on_cuda_and_ranks_on_cpu(split, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    train, test = split
    gnn = registry.create("ranker", "gnn", {"device": "cuda"}, seed=0).fit(None, train)
    assert gnn.train_info_["device"].startswith("cuda")
    assert _acc(gnn, test, 1) >= 0.85
    gnn.save(tmp_path / "g")
    loaded = load_model(tmp_path / "g", "ranker")
    assert all(isinstance(v, np.ndarray) for v in loaded.weights_.values())
    assert [loaded.rank(c) for c in test] == [gnn.rank(c) for c in test]


# ----------------------------------------------------------------------------------- edge features


@dataclasses.dataclass(frozen=True)
class _Edges:
    pairs: tuple
    features: tuple
    values: np.ndarray
    reference: np.ndarray | None = None


def _attach(obj, edges):
    """A copy of a case / reference carrying ``edges`` (set on the frozen copy, as the store does)."""
    out = dataclasses.replace(obj)
    object.__setattr__(out, "edges", edges)
    return out


def _with_edges(case: CaseData, gap_shift: float = 0.0, on: tuple[str, str] = ("checkout", "payment"),
                seed: int = 0) -> CaseData:
    """``case`` with per-edge series over its graph's edges: calls, errors, gap_mean, gap_p99; the
    gap of ``on`` rises by ``gap_shift`` ms after the onset."""
    rng = np.random.default_rng(seed)
    pairs = tuple(case.graph.edges)
    T, R, E = len(case.values), len(case.reference), len(pairs)

    def series(n: int) -> np.ndarray:
        v = np.empty((n, E, 4))
        v[..., 0] = 20 + rng.standard_normal((n, E))
        v[..., 1] = rng.poisson(0.2, (n, E))
        v[..., 2] = 2 + 0.2 * rng.standard_normal((n, E))
        v[..., 3] = 5 + 0.5 * rng.standard_normal((n, E))
        return v

    vals = series(T)
    vals[case.onset :, pairs.index(on), 2:] += gap_shift
    return _attach(case, _Edges(pairs, ("calls", "errors", "gap_mean", "gap_p99"), vals, series(R)))


def test_edge_case_features_exact_and_missing():
    from otlp_aiops.rca.gnn import edge_case_features, graph_edges

    case = mf.make_case("payment", "latency", seed=3)
    ei, pairs = graph_edges(case)
    assert ei.tolist() == [[0, 0, 1, 1, 2], [1, 2, 3, 4, 5]] and pairs == list(mf.EDGES)
    groups = ("gap=gap_mean|gap_p*", "calls=calls", "failed=errors|error_rate")
    # no edge data (a metrics-only dataset): every set is missing
    none = edge_case_features(case, pairs, groups)
    assert none.shape == (5, 12)
    assert none[:, 3::4].tolist() == [[1.0, 1.0, 1.0]] * 5 and not none[:, 0::4].any()
    e = _with_edges(case, gap_shift=10.0)
    x = edge_case_features(e, pairs, groups)
    # checkout -> payment: gap up by 10 ms against a 0.2 ms spread; z clipped at 100
    k = pairs.index(("checkout", "payment"))
    base = e.edges.reference[:, k, 2]
    med = np.median(base)
    scale = 1.4826 * np.median(np.abs(base - med)) + 1e-6 + 1e-3 * abs(med)
    after = e.edges.values[e.onset :, k, 2]
    z = np.clip((after - med) / scale, -100, 100)
    z99 = robust_z_soft_floor(e.edges.values[e.onset :, k, 3:4], e.edges.reference[:, k, 3:4])[:, 0]
    best = np.argmax([np.abs(z).mean(), np.abs(z99).mean()])
    assert x[k, 0] == pytest.approx(max(np.abs(z).max(), np.abs(z99).max()), rel=1e-12) and x[k, 3] == 0.0
    assert x[k, 0] > 20 and z.min() > 10  # 10 ms against a 0.2 ms spread
    assert x[k, 1] == pytest.approx(max(np.abs(z).mean(), np.abs(z99).mean()), rel=1e-12)
    assert x[k, 2] == pytest.approx([z.mean(), z99.mean()][best], rel=1e-12)
    assert np.abs(x[[i for i in range(5) if i != k], 0]).max() < 10  # the other gaps are normal
    # an edge the data lack is missing; data on a pair outside the graph is ignored
    part = _attach(e, _Edges((*e.edges.pairs[1:], ("x", "y")), e.edges.features,
                             np.concatenate([e.edges.values[:, 1:], e.edges.values[:, :1]], 1),
                             np.concatenate([e.edges.reference[:, 1:], e.edges.reference[:, :1]], 1)))
    xp = edge_case_features(part, pairs, groups)
    assert xp[0].tolist() == none[0].tolist() and np.array_equal(xp[1:], x[1:])


def test_edge_conv_reads_edge_features_and_gnn_trains_with_them(split):
    from otlp_aiops.rca.gnn import EdgeConv, GraphRootCauseNet

    torch.manual_seed(0)
    conv = EdgeConv(4, 3)
    x = torch.randn(3, 4)
    ei = torch.tensor([[0, 1], [2, 2]])
    ea = torch.randn(2, 3)
    out = conv(x, ei, ea)
    want = (torch.relu(conv.lin(x[0]) + conv.lin_edge(ea[0]))
            + torch.relu(conv.lin(x[1]) + conv.lin_edge(ea[1]))) / 2
    assert torch.allclose(out[2], want) and torch.equal(out[0], torch.zeros(4))
    for name in ("edge", "gatv2"):
        net = GraphRootCauseNet(5, 8, 2, name, 0.0, 2, edge_dim=3).eval()
        xx, e2 = torch.randn(3, 5), torch.randn(2, 3)
        assert net(xx, ei, e2).shape == (3,)
        assert not torch.allclose(net(xx, ei, e2), net(xx, ei, e2 + 1.0))  # edge features matter
    # the supervised GNN with edge features learns a fault that only an edge shows
    def into_root(c):  # the call edge into the root cause
        return next(p for p in mf.EDGES if p[1] == c.root_cause_service)

    train = [_with_edges(c, gap_shift=10.0, on=into_root(c), seed=i) for i, c in enumerate(split[0][:24])]
    flat = [_attach(dataclasses.replace(c, values=np.broadcast_to(c.reference[:1], c.values.shape).copy()),
                    c.edges) for c in train]
    gnn = registry.create("ranker", "gnn", {"conv": "edge", "kinds": ["latency"]}, seed=0)
    gnn.fit(None, flat[:18])
    assert _acc(gnn, flat[18:], 1) >= 0.8
    assert gnn.rank(flat[18]).services == gnn.rank(flat[18]).services


# ----------------------------------------------------------------------------------- gnn_unsup


def _chain_data(n_ref: int = 400, n_cases: int = 10, seed: int = 0):
    """The 6-service tree with latency that propagates: each service's latency is its own noise plus
    its callees' latency (callers as anomalous as the root, in their units). Returns (reference, cases)."""
    from otlp_aiops.features.data import ReferenceData

    rng = np.random.default_rng(seed)
    services = mf.SERVICES
    col = services.index

    def gen(n: int, root: str | None = None, onset: int = 0) -> np.ndarray:
        own = 5.0 * rng.standard_normal((n, len(services)))
        if root is not None:
            own[onset:, col(root)] += 50.0
        lat = np.zeros_like(own)
        for s in ("redis", "currency", "payment", "cart", "checkout", "frontend"):
            lat[:, col(s)] = own[:, col(s)] + sum(lat[:, col(b)] for a, b in mf.EDGES if a == s)
        v = mf._noise(rng, n)
        v[:, :, 0] = 100 + lat
        return v

    ref_times = mf.T0 - np.arange(n_ref, 0, -1) * np.timedelta64(15, "s")
    ref = ReferenceData("chain", services, mf.FEATURES, mf.KINDS, ref_times,
                        gen(n_ref), mf.graph(), segment=np.zeros(n_ref, dtype=np.int64))
    cases = []
    for i in range(n_cases):
        root = services[1 + i % 5]
        base = mf.make_case(root, "latency", seed=i)
        cases.append(dataclasses.replace(base, case_id=f"chain-{i}", values=gen(40, root, 20),
                                         reference=gen(40)))
    return ref, cases


@pytest.fixture(scope="module")
def unsup():
    ref, cases = _chain_data()
    return ref, cases, registry.create("ranker", "gnn_unsup", seed=0).fit(ref)


def test_unsup_shapes_and_train_info(unsup):
    _, cases, m = unsup
    ws, z = m.case_windows(cases[0])
    G, Ge = 5 + 3, 3  # five kinds and the incoming-edge sets; gap, calls, failed
    assert ws.x.shape == (20, 6, 2 * G) and ws.missing.shape == (20, 6, G)
    assert ws.edge_x.shape == (20, 5, 2 * Ge) and ws.edge_missing.shape == (20, 5, Ge)
    assert ws.edge_missing.min() == 1.0 and not ws.edge_x.any()  # no edge data: all missing
    assert z.shape == (20, 6, 5) and ws.missing[..., :5].max() == 0.0  # every service has every kind
    assert ws.missing[..., 5:].min() == 1.0 and not ws.x[..., 10:].any()
    assert ws.x.dtype == np.float32 and np.isfinite(ws.x).all()
    info = m.train_info_
    # every fault-free window is in one pseudo-case; 20 % held out
    assert info["n_windows"] == 400 and info["n_val"] == 80 and info["n_train"] == 320
    assert not info["has_edge_data"] and 1 <= info["best_epoch"] <= info["epochs_run"] <= 60
    assert m.error_median_.shape == (6,) and (m.error_scale_ > 0).all()
    r = m.rank(cases[0])
    assert sorted(r.services) == sorted(mf.SERVICES) and r.indicators[0][0] == r.services[0]
    assert r.indicators[0][1] == "span.server_latency_p90"


def test_unsup_ranks_the_injected_service_first(unsup):
    # the callers' latency deviates as much as the root's; only the root's is not explained by its callees
    _, cases, m = unsup
    assert [m.rank(c).rank_of(c.root_cause_service) for c in cases] == [1] * len(cases)


def test_unsup_deterministic_and_seeded(unsup, tmp_path):
    ref, cases, m = unsup
    again = registry.create("ranker", "gnn_unsup", seed=0).fit(ref)
    other = registry.create("ranker", "gnn_unsup", seed=1).fit(ref)
    for c in cases[:4]:
        assert again.rank(c) == m.rank(c)
    assert any(other.rank(c).scores != m.rank(c).scores for c in cases[:4])
    m.save(tmp_path / "u")
    loaded = load_model(tmp_path / "u", "ranker")
    assert all(loaded.rank(c) == m.rank(c) for c in cases[:4])


def test_unsup_uses_edge_data_where_present():
    # a fault that shows only on the calls into payment (the client-server gap): the node features are flat
    ref, _ = _chain_data(n_ref=200, n_cases=0)
    from otlp_aiops.features.data import ReferenceData

    rng = np.random.default_rng(1)
    pairs = tuple(mf.EDGES)
    ev = np.empty((200, 5, 2))
    ev[..., 0] = 20 + rng.standard_normal((200, 5))
    ev[..., 1] = 2 + 0.2 * rng.standard_normal((200, 5))
    ref = _attach(ref, _Edges(pairs, ("calls", "gap_mean"), ev))
    assert isinstance(ref, ReferenceData)
    m = registry.create("ranker", "gnn_unsup", {"kinds": ["latency", "errors"]}, seed=0).fit(ref)
    assert m.train_info_["has_edge_data"]
    hits = 0
    for i, root in enumerate(("payment", "cart", "currency", "redis")):
        case = mf.make_case(root, "latency", seed=40 + i, magnitude=0.0)
        case = _with_edges(case, gap_shift=5.0, on=next(p for p in pairs if p[1] == root), seed=i)
        case = _attach(case, _Edges(case.edges.pairs, ("calls", "gap_mean"), case.edges.values[..., [0, 2]],
                                    case.edges.reference[..., [0, 2]]))
        ws, _ = m.case_windows(case)
        assert ws.edge_missing[:, :, 0].max() == 0.0  # gap present on every edge
        hits += m.rank(case).rank_of(root) == 1  # the callee owns the calls into it
    assert hits == 4  # measured: scores 10-26 for the callee, < 2.1 for every other service


def test_unsup_config_and_fit_errors():
    with pytest.raises(ConfigError, match="messages"):
        registry.create("ranker", "gnn_unsup", {"messages": "sideways"})
    with pytest.raises(ConfigError, match="groups"):
        registry.create("ranker", "gnn_unsup", {"groups": ["latency=span.*"]})
    with pytest.raises(ConfigError, match="baseline_windows"):
        registry.create("ranker", "gnn_unsup", {"baseline_windows": 2})
    with pytest.raises(ValueError, match="reference"):
        registry.create("ranker", "gnn_unsup").fit(None)
    with pytest.raises(ValueError, match="has 3 fault-free windows"):
        registry.create("ranker", "gnn_unsup").fit(mf.make_reference(3))
    # a reference of 15 windows (baselines of 14) still trains
    short = registry.create("ranker", "gnn_unsup", {"epochs": 2}).fit(mf.make_reference(15))
    assert short.train_info_["n_windows"] == 15
    ok = registry.create("ranker", "gnn_unsup", {"groups": ["lat=span.server_latency*"], "epochs": 2})
    assert ok.config.groups == ("lat=span.server_latency*",)


def test_store_puts_edge_windows_on_cases_and_reference(tmp_path):
    """The features stage's edge_windows reach the cases and the reference on their windows."""
    from features_factories import SEC, T0, span_id, trace_id, write_raw, write_table
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import FeaturesConfig
    from otlp_aiops.features.store import load_cases, load_edge_series, load_reference

    def span(n, svc, t, dur_ms, kind=2, parent=None, tid=1, **kw):
        return {"trace_id": trace_id(tid), "span_id": span_id(n), "service_name": svc, "kind": kind,
                "parent_span_id": None if parent is None else span_id(parent),
                "start_time": T0 + int(t * SEC), "end_time": T0 + int(t * SEC) + int(dur_ms * 1e6),
                "duration_ns": int(dur_ms * 1e6), **kw}

    spans = []
    # one trace per 10 s window: a -> (client span) -> b; the gap is 3 ms, 13 ms in window 6
    for k in range(8):
        gap = 13 if k == 6 else 3
        spans += [span(3 * k + 1, "a", 10 * k + 1, 30, tid=k + 1),
                  span(3 * k + 2, "a", 10 * k + 1, 5 + gap, kind=3, parent=3 * k + 1, tid=k + 1),
                  span(3 * k + 3, "b", 10 * k + 1, 5, parent=3 * k + 2, tid=k + 1,
                       **({"status_code": 2} if k == 6 else {}))]
    interim, raw, out = tmp_path / "interim", tmp_path / "raw", tmp_path / "features" / "toy"
    write_table(interim, "spans", spans)
    write_raw(raw, [{"incident_id": "i1", "start_time": T0 + 60 * SEC, "end_time": T0 + 70 * SEC,
                     "root_cause_service": "b", "fault_type": "delay"}])
    build_features(interim, raw, out, FeaturesConfig(window="10s", before="20s", after="20s", margin=0,
                                                     reference="20s", segment_gap=5))
    _, series = load_edge_series(out)
    assert series.pairs == (("a", "b"),) and series.values.shape == (8, 1, len(series.features))
    f = {n: i for i, n in enumerate(series.features)}
    (case,) = load_cases(out)
    assert case.edges.values[:, 0, f["gap_mean"]].tolist() == [3.0, 3.0, 13.0, 3.0]  # windows 40-70 s
    assert case.edges.values[:, 0, f["errors"]].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert case.edges.reference[:, 0, f["gap_p99"]].tolist() == [3.0, 3.0]
    assert case.edges.values[0, 0, f["calls"]] == 1
    (moved,) = load_cases(out, detection_offset=10.0)  # rebuilt cases carry them too; 80 s is off the grid
    assert moved.edges.values[:, 0, f["gap_mean"]].tolist()[:3] == [3.0, 13.0, 3.0]
    assert np.isnan(moved.edges.values[3, 0]).all()
    ref = load_reference(out)
    assert ref.edges.values.shape == (len(ref.times), 1, len(series.features))
    # and the GNNs read them: the failed, slow call is the most deviating edge of the case
    from otlp_aiops.rca.gnn import edge_case_features, graph_edges

    _, pairs = graph_edges(case)
    x = edge_case_features(case, pairs, ("gap=gap_mean|gap_p*", "failed=errors|error_rate"))
    assert x[0, 0] == 100.0 and x[0, 3] == 0.0 and x[0, 4] == 100.0  # z clipped: a constant baseline


@pytest.mark.gpu
def test_unsup_trains_on_cuda_and_ranks_on_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ref, cases = _chain_data(n_cases=5)
    m = registry.create("ranker", "gnn_unsup", {"device": "cuda"}, seed=0).fit(ref)
    assert m.train_info_["device"].startswith("cuda")
    assert [m.rank(c).rank_of(c.root_cause_service) for c in cases] == [1] * 5
    m.save(tmp_path / "u")
    loaded = load_model(tmp_path / "u", "ranker")
    assert [loaded.rank(c) for c in cases] == [m.rank(c) for c in cases]
