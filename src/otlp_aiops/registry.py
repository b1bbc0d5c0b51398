"""One registry from short names to model classes, so ``dvc exp run -S rca.method=baro`` works and
heavy libraries (torch, torch_geometric, dowhy) are imported only when their model is used."""

from __future__ import annotations

import importlib
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otlp_aiops.config import ConfigError, config_from_dict
from otlp_aiops.persist import SCHEMA_VERSION

DETECTORS: dict[str, str] = {
    "nsigma": "otlp_aiops.detect.baselines:NSigmaDetector",
    "iforest": "otlp_aiops.detect.baselines:IsolationForestDetector",
    "pca": "otlp_aiops.detect.baselines:PCADetector",
    "lstm_ae": "otlp_aiops.detect.deep:LSTMAutoencoderDetector",
    "usad": "otlp_aiops.detect.deep:USADDetector",
}

RANKERS: dict[str, str] = {
    "random": "otlp_aiops.rca.baselines:RandomRanker",
    "nsigma": "otlp_aiops.rca.baselines:NSigmaRanker",
    "baro": "otlp_aiops.rca.baselines:BaroRanker",
    "epsilon_diagnosis": "otlp_aiops.rca.baselines:EpsilonDiagnosisRanker",
    "pagerank": "otlp_aiops.rca.graph:PageRankRanker",
    "random_walk": "otlp_aiops.rca.graph:RandomWalkRanker",
    "dowhy": "otlp_aiops.rca.causal:DoWhyRanker",
    "gnn": "otlp_aiops.rca.gnn:GNNRanker",
    "mlp": "otlp_aiops.rca.gnn:MLPRanker",
    "multimodal": "otlp_aiops.rca.multimodal:MultimodalRanker",
    "microrank": "otlp_aiops.rca.trace:MicroRankRanker",
    "tracerca": "otlp_aiops.rca.trace:TraceRCARanker",
    "gnn_unsup": "otlp_aiops.rca.gnn:GNNUnsupRanker",
    "nezha": "otlp_aiops.rca.nezha:NezhaRanker",
    "ensemble": "otlp_aiops.rca.ensemble:EnsembleRanker",
    "stacked": "otlp_aiops.rca.stacked:StackedRanker",
}

_KINDS = {"detector": DETECTORS, "ranker": RANKERS}


def names(kind: str) -> list[str]:
    return sorted(_table(kind))


def _table(kind: str) -> dict[str, str]:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; expected detector or ranker") from None


def model_class(kind: str, name: str) -> type:
    table = _table(kind)
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def create(kind: str, name: str, config: Mapping[str, Any] | None = None, *, seed: int = 0) -> Any:
    """Instantiate registered model ``name`` from a params mapping (unknown keys are an error)."""
    cls = model_class(kind, name)
    cfg = config_from_dict(cls.Config, config, where=f"{kind} {name}: ")
    return cls(cfg, seed=seed)


def load_model(path: str | Path, kind: str) -> Any:
    """Rebuild a model saved by :func:`otlp_aiops.persist.save_model`; ``kind`` is ``detector`` or
    ``ranker``. A folder saved before versions were stamped (no ``schema_version``) loads too; one
    from a newer schema is refused with a message naming the folder and both versions."""
    path = Path(path)
    meta = json.loads((path / "model.json").read_text())
    schema = meta.get("schema_version", 0)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        saved_by = meta.get("package_version", "an unknown version")
        raise ConfigError(
            f"{path}: saved model schema {schema!r} (otlp-aiops {saved_by}) is newer than this "
            f"otlp-aiops reads ({SCHEMA_VERSION}); upgrade otlp-aiops or save the model again"
        )
    model = create(kind, meta["name"], meta["config"], seed=meta.get("seed") or 0)
    with open(path / "state.pkl", "rb") as f:
        model.set_state(pickle.load(f))
    return model
