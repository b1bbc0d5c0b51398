"""What the torch models share (``detect/deep.py``, ``rca/gnn.py``): the training device, seeded and
deterministic training, and early stopping on a validation loss — one rule for all of them."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn


def resolve_device(
    device: str, owner: str, *, fix: str = "set its device to cpu in params.yaml"
) -> torch.device:
    """``device`` (``cpu``, ``cuda``, ``cuda:N``) as a :class:`torch.device`. Asking for CUDA where
    torch sees none is an error naming ``owner`` and the ``fix``, never a silent fallback to the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{owner}: device {device!r} was asked for but CUDA is not available here "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False): {fix}"
        )
    return dev


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """torch's deterministic algorithms on (warn only where an op has none), restored afterwards."""
    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave as is), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def seeded_training(seed: int, device: torch.device, *, threads: int = 0) -> Iterator[None]:
    """Train reproducibly: deterministic algorithms on, the global RNGs forked (the CPU's and, on a
    GPU, that device's, so the caller's state is left as it was), ``threads`` torch threads (0: as
    is), then ``torch.manual_seed(seed)``. On a CPU, same seed + same thread count ⇒ same weights."""
    if device.type == "cuda":
        forked = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        forked = []
    with deterministic(), torch.random.fork_rng(devices=forked), torch_threads(threads):
        torch.manual_seed(seed)
        yield


class EarlyStopping:
    """Keep the weights of the epoch with the lowest validation loss; stop after ``patience`` epochs
    without a lower one.

    :meth:`step` records one epoch's loss and says whether to stop: training stops at the first
    epoch ``e`` with ``e − best_epoch ≥ patience``. Before any epoch has improved, ``best_epoch`` is
    ``start_epoch`` (0: a loss that never improves, e.g. NaN, stops at epoch ``patience``).
    :meth:`restore` loads the best weights back into the module (nothing when none was kept)."""

    def __init__(self, patience: int, *, start_epoch: int = 0) -> None:
        if patience < 1:
            raise ValueError(f"patience: must be at least 1, got {patience}")
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = start_epoch
        self.best_state: dict[str, Any] | None = None

    @property
    def improved(self) -> bool:
        """Whether any epoch has improved on the start (so there are best weights to restore)."""
        return self.best_state is not None

    def step(self, epoch: int, loss: float, module: nn.Module) -> bool:
        """Record ``loss`` of ``epoch`` (1-based); True when training should stop now."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def numpy_weights(module: nn.Module) -> dict[str, Any]:
    """A module's state as plain numpy arrays (CPU copies): what a saved model keeps."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def module_from_weights(module: nn.Module, weights: dict[str, Any]) -> nn.Module:
    """``module`` (freshly built, same shapes) with ``weights`` (from :func:`numpy_weights`) loaded,
    in eval mode."""
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    module.eval()
    return module
