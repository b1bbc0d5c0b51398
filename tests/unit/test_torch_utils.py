"""The torch helper shared by the deep detectors and the GNN rankers: early stopping on a hand-made
loss sequence, seeded training, the device check."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from otlp_aiops.torch_utils import (  # noqa: E402
    EarlyStopping,
    deterministic,
    resolve_device,
    seeded_training,
    torch_threads,
)


def _run(losses: list[float], patience: int, **kw) -> tuple[int, EarlyStopping, torch.nn.Module]:
    """Feed ``losses`` epoch by epoch; the module's weight is set to the epoch number first, so the
    kept weights tell which epoch they came from. Returns the epoch training stopped at."""
    module = torch.nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience, **kw)
    epoch = 0
    for epoch, loss in enumerate(losses, 1):
        with torch.no_grad():
            module.weight.fill_(float(epoch))
        if stopper.step(epoch, loss, module):
            break
    return epoch, stopper, module


def test_stops_patience_epochs_after_the_best_and_restores_its_weights():
    # best at epoch 3 (0.5); epochs 4 and 5 are no lower (a tie is not an improvement): stop at 5
    epoch, stopper, module = _run([1.0, 0.8, 0.5, 0.7, 0.5, 0.1, 0.0], patience=2)
    assert epoch == 5
    assert stopper.best_epoch == 3 and stopper.best_loss == 0.5 and stopper.improved
    stopper.restore(module)
    assert module.weight.item() == 3.0


def test_a_late_improvement_resets_the_count():
    epoch, stopper, _ = _run([1.0, 1.1, 0.9, 1.2, 1.3, 1.4, 0.1], patience=3)
    assert epoch == 6 and stopper.best_epoch == 3
    epoch, stopper, _ = _run([1.0, 1.1, 0.9, 1.2, 0.8, 1.4, 1.5, 1.6, 0.1], patience=3)
    assert epoch == 8 and stopper.best_epoch == 5


def test_never_improving_loss_stops_by_start_epoch_and_restores_nothing():
    nan = math.nan
    epoch, stopper, module = _run([nan] * 10, patience=3)
    assert epoch == 3 and not stopper.improved and stopper.best_epoch == 0
    stopper.restore(module)  # nothing kept: the last weights stay
    assert module.weight.item() == 3.0
    epoch, _, _ = _run([nan] * 10, patience=3, start_epoch=-1)  # the GNN rankers' count
    assert epoch == 2
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(0)


def _seeded_draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    with seeded_training(seed, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
        layer = torch.nn.Linear(4, 3)
        return layer.weight.detach().clone(), torch.randn(5)


def test_seeding_gives_identical_tensors_and_leaves_the_global_state_alone():
    torch.manual_seed(123)
    outside = torch.get_rng_state()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    w1, r1 = _seeded_draw(7)
    w2, r2 = _seeded_draw(7)
    assert torch.equal(w1, w2) and torch.equal(r1, r2)
    w3, _ = _seeded_draw(8)
    assert not torch.equal(w1, w3)
    # the same draws as torch.manual_seed(seed) straight away: seeding is the only RNG call made
    torch.manual_seed(7)
    assert torch.equal(torch.nn.Linear(4, 3).weight.detach(), w1)
    torch.set_rng_state(outside)
    _seeded_draw(7)
    assert torch.equal(torch.get_rng_state(), outside)
    assert torch.are_deterministic_algorithms_enabled() == was_deterministic


def test_deterministic_and_threads_are_restored():
    before = torch.get_num_threads()
    with deterministic(), torch_threads(1):
        assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: leave as is
        assert torch.get_num_threads() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_without_a_device_is_an_error_naming_the_owner_and_fix():
    assert resolve_device("cpu", "gnn") == torch.device("cpu")
    with pytest.raises(RuntimeError, match=r"gnn: device 'cuda:0' .* CUDA is not available.*: use the cpu"):
        resolve_device("cuda:0", "gnn", fix="use the cpu")
