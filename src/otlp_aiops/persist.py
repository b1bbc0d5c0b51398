"""Saving fitted models: ``<dir>/model.json`` (registry name, config, seed, the package version and
the layout's schema version) and ``<dir>/state.pkl`` (the fitted ``*_`` attributes). Torch models
store tensors as numpy arrays in that state, so a model saved on a GPU loads on a CPU. Loading is
:func:`otlp_aiops.registry.load_model`, beside the table of names it rebuilds the model from."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from otlp_aiops import __version__
from otlp_aiops.config import config_to_dict
from otlp_aiops.outputs import claim_output

# The layout of a saved model folder. 1: model.json with name, class, config, seed, package_version,
# schema_version + state.pkl. A folder without schema_version (saved before it was stamped) is 0 and
# loads the same way; a larger number than this was written by a newer otlp-aiops.
SCHEMA_VERSION = 1


def fitted_state(model: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


def _is_timing(key: Any) -> bool:
    return isinstance(key, str) and key.rstrip("_").endswith("seconds")


def without_timings(state: Any) -> Any:
    """``state`` without wall-clock values (keys ending in ``seconds``, e.g. ``train_seconds``,
    ``epoch_seconds_``, at any depth of nested dicts): a saved model is a DVC output, and the same
    data, config and seed must give the same bytes. The fitted model in memory keeps them."""
    if isinstance(state, dict):
        return {k: without_timings(v) for k, v in state.items() if not _is_timing(k)}
    return state


def save_model(model: Any, path: str | Path, name: str) -> Path:
    """Write ``model`` to the folder ``path`` atomically (a temporary folder renamed into place)."""
    path = Path(path)
    meta = {
        "name": name,
        "class": type(model).__qualname__,
        "config": config_to_dict(model.config),
        "seed": getattr(model, "seed", None),
        "package_version": __version__,
        "schema_version": SCHEMA_VERSION,
    }
    # refuses a folder that is not a saved model; locked; the finished folder is swapped in
    with claim_output(path, owner="model", known_files=("model.json",), marker=False) as tmp:
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        with open(tmp / "state.pkl", "wb") as f:
            pickle.dump(without_timings(model.get_state()), f, protocol=5)
    return path


class Persistent:
    """Saving and loading for the model contracts: the fitted state is the attributes ending in "_"."""

    name: str = "model"

    def _set_config(self, config: Any, seed: int) -> None:
        """Keep ``config`` (None: the default ``Config()``), which must be a ``Config``, and the seed."""
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(
                f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.seed = int(seed)

    def get_state(self) -> dict[str, Any]:
        return fitted_state(self)

    def set_state(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def save(self, path: str | Path) -> None:
        save_model(self, path, self.name)
