"""The deep detectors (``lstm_ae``, ``usad``): quality floor on the synthetic incidents, determinism,
save → load, segment boundaries, NaN input, strict configs, devices. Small configs keep this file
at a few seconds; one thread keeps the scores bit-reproducible."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import average_precision_score  # noqa: E402

from model_factories import make_detection  # noqa: E402
from otlp_aiops import registry  # noqa: E402
from otlp_aiops.config import ConfigError  # noqa: E402
from otlp_aiops.detect.deep import window_index  # noqa: E402
from otlp_aiops.registry import load_model  # noqa: E402

# small, fast settings; the quality floors below were measured with them (see each comment)
SMALL = {
    "lstm_ae": {"window": 6, "hidden_size": 16, "latent_size": 4, "epochs": 8, "batch_size": 32,
                "patience": 3},
    "usad": {"window": 4, "hidden_size": 32, "latent_size": 8, "epochs": 8, "batch_size": 32, "patience": 3,
             "val_fraction": 0.2},  # usad defaults to no early stopping; test that path here too
}
# measured AUC-PR with SMALL on make_detection(seed 0 and 1), fitted on the fault-free first half,
# model seeds 0-2, with and without 5 % NaN: 1.000 every time for both (floors leave margin)
AP_FLOOR = {"lstm_ae": 0.9, "usad": 0.9}
NAMES = sorted(SMALL)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_detection()


def make(name: str, seed: int = 0, **overrides):
    return registry.create("detector", name, {**SMALL[name], **overrides}, seed=seed)


@pytest.fixture(scope="module")
def fitted(data):
    return {name: make(name).fit(data.X[:300]) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_quality_floor_on_synthetic_incidents(name, data, fitted):
    scores = fitted[name].score(data.X, data.segment)
    assert scores.shape == (len(data.X),) and np.isfinite(scores).all()
    assert average_precision_score(data.label, scores) >= AP_FLOOR[name]
    # higher = more anomalous: the incidents outscore the fault-free rows on average
    assert scores[data.label == 1].mean() > 3 * scores[data.fault_free].mean()
    m = fitted[name]
    assert len(m.epoch_seconds_) == m.n_epochs_ <= SMALL[name]["epochs"]
    assert all(s > 0 for s in m.epoch_seconds_)
    assert 1 <= m.best_epoch_ <= m.n_epochs_
    assert len(m.train_loss_) == len(m.val_loss_) == m.n_epochs_
    assert m.val_loss_[m.best_epoch_ - 1] == min(m.val_loss_)
    assert m.threshold_ == pytest.approx(np.quantile(m.train_scores_, 0.99))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_other_seed_other_scores(name, data, fitted):
    a = fitted[name].score(data.X, data.segment)
    b = make(name).fit(data.X[:300]).score(data.X, data.segment)
    np.testing.assert_array_equal(a, b)
    c = make(name, seed=1).fit(data.X[:300]).score(data.X, data.segment)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_fit_leaves_global_rng_and_threads_alone(name, data):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    make(name, epochs=2).fit(data.X[:100])
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.parametrize("name", NAMES)
def test_save_load_identical_scores(name, data, fitted, tmp_path):
    m = fitted[name]
    m.save(tmp_path / name)
    loaded = load_model(tmp_path / name, "detector")
    assert type(loaded) is type(m) and loaded.config == m.config and loaded.seed == m.seed
    from otlp_aiops.persist import without_timings

    # wall-clock values (epoch_seconds_) are not saved: a saved model must be byte-reproducible
    state, back = without_timings(m.get_state()), loaded.get_state()
    assert "epoch_seconds_" in m.get_state() and "epoch_seconds_" not in back
    assert sorted(state) == sorted(back)
    for k, v in state.items():
        if k == "weights_":
            assert sorted(v) == sorted(back[k])
            for w in v:
                assert isinstance(back[k][w], np.ndarray)
                np.testing.assert_array_equal(v[w], back[k][w])
        else:
            np.testing.assert_array_equal(np.asarray(v), np.asarray(back[k]))
    np.testing.assert_array_equal(loaded.score(data.X, data.segment), m.score(data.X, data.segment))
    assert loaded.threshold_ == m.threshold_


def test_window_index_pads_with_the_segment_start():
    idx = window_index(7, 3, np.array([4, 4, 4, 4, 9, 9, 4]))
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [4, 4, 4], [4, 4, 5], [6, 6, 6]]
    assert window_index(3, 2, None).tolist() == [[0, 0], [0, 1], [1, 2]]
    with pytest.raises(ValueError, match="segments"):
        window_index(3, 2, np.zeros(4))


@pytest.mark.parametrize("name", NAMES)
def test_windows_do_not_cross_segment_boundaries(name, data, fitted):
    m = fitted[name]
    seg = np.repeat([0, 1], [350, 250])
    changed = data.X.copy()
    changed[330:350] += 50.0 * data.X[330:350].std(axis=0)  # wreck the end of segment 0
    a, b = m.score(data.X, seg), m.score(changed, seg)
    assert np.all(b[330:350] > a[330:350])  # the change itself is seen
    np.testing.assert_allclose(b[350:], a[350:], rtol=1e-6, atol=1e-9)  # segment 1 does not see it
    # without the boundary, the first rows of what was segment 1 do see it: the test can fail
    a1, b1 = m.score(data.X, None), m.score(changed, None)
    w = SMALL[name]["window"]
    assert np.all(np.abs(b1[350:350 + w - 1] - a1[350:350 + w - 1]) > 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_nan_input_is_imputed_from_training_medians(name, data):
    rng = np.random.default_rng(5)
    X = data.X.copy()
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:, 7] = np.nan  # a column with no value at all
    m = make(name).fit(X[:300])
    assert np.isfinite(m.medians_).all() and m.medians_[7] == 0.0
    scores = m.score(X, data.segment)
    assert np.isfinite(scores).all()
    assert average_precision_score(data.label, scores) >= AP_FLOOR[name] - 0.1


@pytest.mark.parametrize("name", NAMES)
def test_config_is_strict(name):
    with pytest.raises(ConfigError, match="bogus"):
        registry.create("detector", name, {"bogus": 1})
    with pytest.raises(ConfigError, match="window"):
        registry.create("detector", name, {"window": 0})
    with pytest.raises(ConfigError, match="device"):
        registry.create("detector", name, {"device": "tpu"})
    with pytest.raises(ConfigError, match="val_fraction"):
        registry.create("detector", name, {"val_fraction": 1.0})


@pytest.mark.parametrize("name", NAMES)
def test_without_validation_all_epochs_run(name, data):
    m = make(name, epochs=3, val_fraction=0.0).fit(data.X[:120])
    assert m.n_epochs_ == 3 and m.best_epoch_ == 3 and m.val_loss_ == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_asked_but_absent_is_a_clear_error(name, data, fitted):
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        make(name, device="cuda").fit(data.X[:100])
    with pytest.raises(RuntimeError, match="with_device"):
        fitted[name].with_device("cuda").score(data.X)
    cpu = fitted[name].with_device("cpu")
    np.testing.assert_array_equal(cpu.score(data.X), fitted[name].score(data.X))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name, data, fitted, tmp_path):
    cpu_model = fitted[name]
    cpu_scores = cpu_model.score(data.X, data.segment)
    # the CPU-fitted weights scored on the GPU: float32 arithmetic differences only
    np.testing.assert_allclose(cpu_model.with_device("cuda").score(data.X, data.segment), cpu_scores,
                               rtol=1e-3, atol=1e-6)
    # fitted on the GPU (fixed epochs, so early stopping cannot pick a different epoch): the
    # trajectories drift apart by rounding only
    kw = {"val_fraction": 0.0, "epochs": 5}
    g = make(name, device="cuda", **kw).fit(data.X[:300])
    c = make(name, **kw).fit(data.X[:300])
    gs, cs = g.score(data.X, data.segment), c.score(data.X, data.segment)
    np.testing.assert_allclose(gs, cs, rtol=2e-2, atol=1e-4)
    assert average_precision_score(data.label, gs) >= AP_FLOOR[name]
    # saved on the GPU, loaded and scored on the CPU
    g.save(tmp_path / "g")
    back = load_model(tmp_path / "g", "detector").with_device("cpu")
    np.testing.assert_allclose(back.score(data.X, data.segment), gs, rtol=1e-3, atol=1e-6)


def test_usad_paper_score_over_the_whole_window(data, fitted):
    m = fitted["usad"]
    whole = make("usad", last_step=False)
    whole.set_state(m.get_state())
    a, b = m.score(data.X, data.segment), whole.score(data.X, data.segment)
    assert np.isfinite(b).all() and not np.allclose(a, b)
    # a spike in one row raises the whole-window score of the window - 1 rows after it, not the last-step one
    w = SMALL["usad"]["window"]
    X = data.X.copy()
    X[100] += 30 * data.X[:300].std(axis=0)
    a2, b2 = m.score(X, data.segment), whole.score(X, data.segment)
    assert np.all(b2[100:100 + w] > b[100:100 + w] * 2)
    np.testing.assert_allclose(a2[101:100 + w], a[101:100 + w], rtol=0.5)
    assert a2[100] > 10 * a[100]
