"""The model contract, checked for every registered detector and root-cause ranker: a new model is
tested the moment it is registered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from model_factories import make_case, make_cases, make_detection, make_reference
from otlp_aiops import registry
from otlp_aiops.config import ConfigError
from otlp_aiops.registry import load_model

# small settings so the deep models train in seconds here (their own tests check quality)
FAST = {
    "lstm_ae": {"epochs": 3},
    "usad": {"epochs": 3},
    "gnn": {"epochs": 20},
    "mlp": {"epochs": 20},
}



@pytest.fixture(scope="module")
def detection():
    return make_detection(n=400, incidents=((250, 280), (330, 350)))


@pytest.mark.parametrize("name", registry.names("detector"))
def test_detector_contract(name, detection, tmp_path):
    d = detection
    train = d.X[d.fault_free][:200]
    m = registry.create("detector", name, FAST.get(name, {}), seed=3)
    assert m.fit(train) is m
    assert np.isfinite(m.threshold_)
    s = m.score(d.X)
    assert s.shape == (len(d.X),) and np.isfinite(s).all()
    # direction: higher is more anomalous — incident rows outscore fault-free rows on average
    assert s[d.label == 1].mean() > s[d.fault_free].mean()
    assert m.predict(d.X).dtype == np.int8
    # deterministic under a seed
    m2 = registry.create("detector", name, FAST.get(name, {}), seed=3).fit(train)
    np.testing.assert_array_equal(m2.score(d.X), s)
    # save -> load -> identical output
    m.save(tmp_path / name)
    loaded = load_model(tmp_path / name, "detector")
    assert type(loaded) is type(m) and loaded.config == m.config
    np.testing.assert_array_equal(loaded.score(d.X), s)
    assert loaded.threshold_ == m.threshold_
    # the fitted state is exactly the attributes ending in "_"
    assert all(k.endswith("_") for k in m.get_state())


@pytest.mark.parametrize("name", registry.names("detector"))
def test_detector_rejects_unknown_setting(name):
    with pytest.raises(ConfigError, match="bogus"):
        registry.create("detector", name, {"bogus": 1})


@pytest.mark.parametrize("name", registry.names("detector"))
def test_detector_config_is_frozen_and_unfitted_detector_refuses_to_score(name):
    cls = registry.model_class("detector", name)
    cfg = cls.Config()
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.contamination = 0.5  # type: ignore[misc]
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().score(np.zeros((2, 3)))


@pytest.fixture(scope="module")
def rca_data():
    return make_reference(120, seed=5), make_cases(16, seed=1), make_cases(6, seed=2)


def _strip_labels(case):
    return dataclasses.replace(case, root_cause_service=None, root_cause_indicator=None, fault_type=None)


@pytest.mark.parametrize("name", registry.names("ranker"))
def test_ranker_contract(name, rca_data, tmp_path):
    reference, train, test = rca_data
    r = registry.create("ranker", name, FAST.get(name, {}), seed=7)
    assert r.fit(reference, train) is r
    rankings = [r.rank(c) for c in test]
    for c, rk in zip(test, rankings, strict=True):
        assert sorted(rk.services) == sorted(c.services)  # every service exactly once
        assert len(rk.scores) == len(rk.services)
        assert list(rk.scores) == sorted(rk.scores, reverse=True)
        # the labels are for evaluation only
        assert r.rank(_strip_labels(c)).services == rk.services
    # deterministic under a seed
    r2 = registry.create("ranker", name, FAST.get(name, {}), seed=7).fit(reference, train)
    assert [r2.rank(c).services for c in test] == [rk.services for rk in rankings]
    # save -> load -> identical rankings and scores
    r.save(tmp_path / name)
    loaded = load_model(tmp_path / name, "ranker")
    assert type(loaded) is type(r) and loaded.config == r.config
    for c, rk in zip(test, rankings, strict=True):
        again = loaded.rank(c)
        assert again.services == rk.services
        np.testing.assert_allclose(again.scores, rk.scores, rtol=0, atol=0)


@pytest.mark.parametrize("name", registry.names("ranker"))
def test_ranker_rejects_unknown_setting(name):
    with pytest.raises(ConfigError, match="bogus"):
        registry.create("ranker", name, {"bogus": 1})


@pytest.mark.parametrize("name", registry.names("ranker"))
def test_ranker_must_be_fitted(name):
    with pytest.raises(RuntimeError, match="not fitted"):
        registry.create("ranker", name).rank(make_case())


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="baro"):
        registry.create("ranker", "nonesuch")
