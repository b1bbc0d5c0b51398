"""Deep multivariate anomaly detectors (PyTorch) over sliding windows of the detection matrix.

``lstm_ae`` — an LSTM autoencoder in the EncDec-AD line (Malhotra et al., 2016): an LSTM encoder
reads a window of the standardised multivariate series, its last hidden state is squeezed to a
latent vector, and an LSTM decoder fed that vector at every step reconstructs the window.

``usad`` — USAD (Audibert, Michiardi, Guyard, Marti, Zuluaga; KDD 2020): one MLP encoder E shared by
two decoders D1, D2, i.e. AE1 = D1∘E and AE2 = D2∘E over a flattened window W. Training (the paper's
Algorithm 1; epoch n counted from 1) alternates two updates per batch:

    L_AE1 = 1/n·||W − AE1(W)||² + (1 − 1/n)·||W − AE2(AE1(W))||²      (E and D1)
    L_AE2 = 1/n·||W − AE2(W)||² − (1 − 1/n)·||W − AE2(AE1(W))||²      (E and D2)

so AE1 learns to fool AE2 and AE2 learns to tell real windows from AE1's reconstructions. The
anomaly score is α·||W − AE1(W)||² + β·||W − AE2(AE1(W))||² (the paper's eq. 13). Our default is
α = 1, β = 0 — see :class:`USADConfig` for the measurement behind that departure from the paper.

Why USAD as the second detector. TSB-AD (Liu & Paparrizos, "The Elephant in the Room", NeurIPS 2024
D&B) evaluates 40 detectors with VUS-PR after per-method tuning; on its multivariate collection
(TSB-AD-M) the neural detectors that do well are a tight group of simple ones — CNN, OmniAnomaly,
LSTMAD, USAD and AutoEncoder average about 0.30-0.31 VUS-PR, level with PCA — while the attention
models (AnomalyTransformer, TranAD) fall to the bottom. (Those averages are the paper's TSB-AD-M
summary as we recall it, spot-checked against, not recomputed from, the repository's per-series
``benchmark_exp/benchmark_eval_results/multi_mergedTable_VUS-PR.csv``.) No deep detector ranks
*clearly* above USAD there, so nothing justifies a bigger model; of that top group, CNN and LSTMAD
are next-step forecasters and overlap with our LSTM autoencoder's idea of "predict the normal
dynamics", OmniAnomaly (stochastic RNN + planar normalising flow) does not fit in ~200 lines, and
USAD adds a genuinely different mechanism (adversarial amplification of reconstruction errors), is a
few MLPs, and trains in seconds on a CPU.

Conventions shared by both detectors (documented choices)
--------------------------------------------------------
* Pre-processing: NaN → the column's training median (:func:`~otlp_aiops.detect.base.impute_medians`),
  then standardised with the training mean and standard deviation; a column that is constant in
  training (std ≈ 0) keeps scale 1, so any later deviation from its constant still shows.
* Windows: row ``t`` is scored from the window of ``window`` rows ending at ``t``. Windows never
  cross a segment boundary (``segments`` numbers contiguous stretches; a new stretch starts wherever
  the number changes from one row to the next; ``None`` is one stretch). A row with fewer than
  ``window − 1`` predecessors in its segment gets a window *left-padded with copies of the segment's
  first row* (edge padding), so it still gets a score, computed from its own segment only. Training
  uses one window per training row, the padded ones included, so the model has seen such windows.
* ``lstm_ae`` scores a row by the squared reconstruction error of the window's *last step* (the row
  itself), averaged over columns: an incident's score starts and ends with the incident instead of
  being smeared over the next ``window − 1`` rows. It trains on the error of every step.
* ``usad`` scores a row by the paper's score restricted to the window's last step by default
  (``last_step``, for the same reason; measured in :class:`USADConfig`); ``last_step: false`` gives
  the paper's whole-window score.
* Validation and early stopping: the last ``val_fraction`` of the training windows (in time order)
  are held out; the ``window − 1`` training windows just before them are dropped, so no row is in
  both sets. Training stops after ``patience`` epochs without a lower validation loss and the
  weights of the best epoch are restored (:class:`otlp_aiops.torch_utils.EarlyStopping`, the rule
  of the GNN rankers too). With too few windows to hold any out, all ``epochs`` run.
  ``lstm_ae`` validates on its reconstruction loss; ``usad`` on the mean of its anomaly score over
  the validation windows (its training losses change weights every epoch, so they are not comparable
  between epochs; the score on held-out normal windows is what false alarms come from). ``usad``
  defaults to ``val_fraction: 0`` (all epochs, as in the paper): see :class:`USADConfig`.
* Determinism: weights are initialised under ``torch.manual_seed(seed)`` inside
  ``torch.random.fork_rng`` (the caller's global RNG state is left as it was;
  :func:`otlp_aiops.torch_utils.seeded_training`), batches are shuffled
  by a ``torch.Generator`` seeded with ``seed``, and ``torch.use_deterministic_algorithms(True,
  warn_only=True)`` is on during fit and score and restored afterwards. The thread count is never
  changed. On a CPU, same seed + same thread count ⇒ identical scores.
* Device: ``device`` is ``cpu`` (default), ``cuda`` or ``cuda:N``. Asking for CUDA where
  ``torch.cuda.is_available()`` is false is an error (fit and score), never a silent fallback. The
  fitted weights are stored as numpy arrays (``weights_``), so a model fitted and saved on a GPU loads
  anywhere; ``model.with_device("cpu")`` gives a copy that scores on the CPU.
* Fitted attributes for benchmarks: ``epoch_seconds_`` (wall seconds of each epoch, training plus
  validation), ``best_epoch_`` (1-based), ``train_loss_`` / ``val_loss_`` per epoch, ``n_epochs_``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import time
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from otlp_aiops.detect.base import Detector, DetectorConfig, column_medians, impute_medians
from otlp_aiops.torch_utils import (
    EarlyStopping,
    deterministic,
    module_from_weights,
    numpy_weights,
    resolve_device,
    seeded_training,
)

log = logging.getLogger(__name__)

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


# --------------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _DeepConfig(DetectorConfig):
    window: int = 10
    hidden_size: int = 64
    latent_size: int = 16
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 5
    val_fraction: float = 0.2
    device: str = "cpu"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("window", "hidden_size", "latent_size", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be positive, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if not _DEVICE_RE.match(self.device):
            raise ValueError(f"device: expected cpu, cuda or cuda:N, got {self.device!r}")


@dataclasses.dataclass(frozen=True)
class LSTMAutoencoderConfig(_DeepConfig):
    window: int = 10
    hidden_size: int = 64  # LSTM state size of encoder and decoder
    latent_size: int = 16  # the bottleneck between them
    num_layers: int = 1  # stacked LSTM layers in encoder and decoder
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 5
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_layers < 1:
            raise ValueError(f"num_layers: must be at least 1, got {self.num_layers}")


@dataclasses.dataclass(frozen=True)
class USADConfig(_DeepConfig):
    window: int = 5
    hidden_size: int = 128  # first hidden layer of the encoder (the second has half of it)
    latent_size: int = 32
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 15
    # No early stopping by default (the paper trains a fixed number of epochs): the adversarial
    # schedule makes the held-out score non-monotone — it is lowest at epochs 2-4, while AE1 still
    # outputs little more than the mean, and early stopping then keeps an under-trained model
    # (measured: AUC-PR 0.18 on the benchmark's synthetic data vs 0.81-0.99 after 60 epochs).
    val_fraction: float = 0.0
    # Score weights. The paper's α = β = 0.5 is not the default: measured here, AE2 saturates to a
    # near-constant output within ~10 epochs (its training objective rewards the largest error on
    # AE1's output, and the sigmoid lets it sit at the far extreme), so ||W − AE2(AE1(W))||² becomes
    # ≈ 1/3 for every window and its noise drowns the informative AE1 term (AUC-PR 0.12-0.15 at
    # α = β = 0.5 vs 0.90-0.95 at α = 1 on the benchmark's synthetic data). Set beta > 0 for the
    # paper's score.
    alpha: float = 1.0  # weight of ||W − AE1(W)||² in the score
    beta: float = 0.0  # weight of ||W − AE2(AE1(W))||² in the score
    # Score only the window's last step (the row itself) instead of the paper's whole window. On the
    # default dataset (fault-free stretches of ~5 windows between many incidents) the whole-window
    # score smears each incident over the next window − 1 rows: AUC-PR 0.74 vs 0.90 (last step).
    last_step: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta <= 0:
            raise ValueError(
                f"alpha, beta: must be non-negative and not both 0, got {self.alpha}, {self.beta}"
            )


# --------------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------------
class _LSTMAutoencoder(nn.Module):
    """(B, T, D) → (B, T, D): LSTM encoder → latent vector → LSTM decoder fed the latent each step."""

    def __init__(self, n_features: int, hidden: int, latent: int, layers: int) -> None:
        super().__init__()
        self.encoder = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTM(latent, hidden, num_layers=layers, batch_first=True)
        self.output = nn.Linear(hidden, n_features)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(w)
        z = torch.tanh(self.to_latent(h[-1]))  # the top layer's last state
        out, _ = self.decoder(z.unsqueeze(1).expand(-1, w.shape[1], -1))
        return self.output(out)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _USAD(nn.Module):
    """Encoder E and decoders D1, D2 over flattened windows: the paper's three-layer MLPs with ReLU,
    the decoders ending in a sigmoid over min-max-scaled inputs. The bounded output matters: AE2
    *maximises* ||W − AE2(AE1(W))||², which a linear output can grow without limit (measured here:
    with linear decoders AUC-PR on the synthetic incidents falls from 0.99 to 0.1-0.7 by epoch 60)."""

    def __init__(self, n_in: int, hidden: int, latent: int) -> None:
        super().__init__()
        h2 = max(hidden // 2, latent)
        self.encoder = nn.Sequential(_mlp([n_in, hidden, h2, latent]), nn.ReLU())
        self.decoder1 = nn.Sequential(_mlp([latent, h2, hidden, n_in]), nn.Sigmoid())
        self.decoder2 = nn.Sequential(_mlp([latent, h2, hidden, n_in]), nn.Sigmoid())

    def forward(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(w)
        w1 = self.decoder1(z)
        w2 = self.decoder2(z)
        w3 = self.decoder2(self.encoder(w1))
        return w1, w2, w3


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def window_index(n_rows: int, window: int, segments: np.ndarray | None) -> np.ndarray:
    """(n_rows, window) row positions of the window ending at each row, edge-padded at segment starts.

    A segment starts at row 0 and wherever ``segments`` changes value; a window never reaches back
    before its row's segment start.
    """
    rows = np.arange(n_rows)
    if segments is None:
        start = np.zeros(n_rows, dtype=np.int64)
    else:
        seg = np.asarray(segments)
        if seg.shape != (n_rows,):
            raise ValueError(f"segments: expected shape ({n_rows},), got {seg.shape}")
        is_start = np.ones(n_rows, dtype=bool)
        is_start[1:] = seg[1:] != seg[:-1]
        start = np.maximum.accumulate(np.where(is_start, rows, 0))
    idx = rows[:, None] - (window - 1) + np.arange(window)[None, :]
    return np.maximum(idx, start[:, None]).astype(np.int64)


def _device(device: str, owner: str) -> torch.device:
    return resolve_device(device, owner, fix="set the detector's device to cpu in params.yaml, or for "
                          "a fitted/loaded model use model.with_device('cpu')")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------
# the shared detector machinery
# --------------------------------------------------------------------------------------------------
class _WindowedTorchDetector(Detector):
    """Pre-processing, windowing, the training loop with early stopping, state and device handling.

    Subclasses supply ``_build(n_features)``, ``_train_step(net, batch, epoch, opts)``,
    ``_optimizers(net)``, ``_window_scores(net, batch)`` (per-window score, also the validation
    criterion unless ``_val_loss`` is overridden) and ``_batch_loss`` for validation.
    """

    stochastic: ClassVar[bool] = True

    # --- pre-processing --------------------------------------------------------------------------
    def _standardise(self, X: np.ndarray) -> np.ndarray:
        Z = (impute_medians(X, self.medians_) - self.offset_) / self.scale_
        return Z.astype(np.float32)

    @staticmethod
    def _scaling(Xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) per column from the imputed training rows: mean and standard deviation;
        a constant column keeps scale 1."""
        mean, std = Xi.mean(axis=0), Xi.std(axis=0)
        return mean, np.where(std > 1e-12 * (1.0 + np.abs(mean)), std, 1.0)

    # --- the contract ----------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, segments: np.ndarray | None) -> None:
        cfg = self.config
        if len(X) == 0:
            raise ValueError(f"{self.name}: cannot fit on 0 rows")
        device = _device(cfg.device, self.name)
        self.medians_ = column_medians(X)
        Xi = impute_medians(X, self.medians_)
        self.offset_, self.scale_ = self._scaling(Xi)
        Z = torch.from_numpy(self._standardise(X)).to(device)
        idx = window_index(len(X), cfg.window, segments)
        n = len(idx)
        n_val = round(cfg.val_fraction * n)
        n_train = n - n_val - (cfg.window - 1)
        if n_val < 2 or n_train < 2:
            if cfg.val_fraction > 0:
                log.warning("%s: %d training rows are too few for a validation split; training all %d "
                            "epochs without early stopping", self.name, n, cfg.epochs)
            train_idx, val_idx = idx, idx[:0]
        else:
            train_idx, val_idx = idx[:n_train], idx[n - n_val:]
        train_idx_t = torch.from_numpy(train_idx).to(device)
        val_idx_t = torch.from_numpy(val_idx).to(device)

        with seeded_training(self.seed, device):
            net = self._build(X.shape[1]).to(device)
            opts = self._optimizers(net)
            gen = torch.Generator().manual_seed(self.seed)
            stopper, best_epoch = EarlyStopping(cfg.patience), 0
            self.epoch_seconds_, self.train_loss_, self.val_loss_ = [], [], []
            for epoch in range(1, cfg.epochs + 1):
                _sync(device)
                t0 = time.perf_counter()
                net.train()
                order = torch.randperm(len(train_idx_t), generator=gen).to(device)
                total, count = 0.0, 0
                for b in range(0, len(order), cfg.batch_size):
                    batch = Z[train_idx_t[order[b:b + cfg.batch_size]]]
                    loss = self._train_step(net, batch, epoch, opts)
                    total += loss * len(batch)
                    count += len(batch)
                self.train_loss_.append(total / max(count, 1))
                if len(val_idx_t):
                    val = float(np.mean(self._scores(net, Z, val_idx_t, validation=True)))
                    self.val_loss_.append(val)
                _sync(device)
                self.epoch_seconds_.append(time.perf_counter() - t0)
                if not len(val_idx_t):
                    best_epoch = epoch
                    continue
                if stopper.step(epoch, val, net):
                    break
            if stopper.improved:
                stopper.restore(net)
                best_epoch = stopper.best_epoch
        self.n_epochs_ = len(self.epoch_seconds_)
        self.best_epoch_ = best_epoch
        self.weights_ = numpy_weights(net)
        self._net, self._net_device = net.eval(), device

    def _score(self, X: np.ndarray, segments: np.ndarray | None) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        net, device = self._network()
        Z = torch.from_numpy(self._standardise(X)).to(device)
        idx = torch.from_numpy(window_index(len(X), self.config.window, segments)).to(device)
        with deterministic():
            return self._scores(net, Z, idx).astype(np.float64)

    def _scores(self, net: nn.Module, Z: torch.Tensor, idx: torch.Tensor,
                validation: bool = False) -> np.ndarray:
        was_training = net.training
        net.eval()
        out = []
        step = max(self.config.batch_size, 256)
        with torch.no_grad():
            for b in range(0, len(idx), step):
                out.append(self._window_scores(net, Z[idx[b:b + step]], validation).cpu())
        net.train(was_training)
        return torch.cat(out).numpy()

    # --- state and device ------------------------------------------------------------------------
    def _network(self) -> tuple[nn.Module, torch.device]:
        device = _device(self.config.device, self.name)
        cached = getattr(self, "_net", None)
        if cached is not None and getattr(self, "_net_device", None) == device:
            return cached, device
        with torch.random.fork_rng(devices=[]):
            net = module_from_weights(self._build(self.n_features_in_), self.weights_)
        self._net, self._net_device = net.to(device), device
        return self._net, device

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._net = None

    def with_device(self, device: str) -> _WindowedTorchDetector:
        """A copy of this (fitted) detector that runs on ``device``; the weights are shared as numpy."""
        other = type(self)(dataclasses.replace(self.config, device=device), seed=self.seed)
        other.set_state(self.get_state())
        return other

    # --- for subclasses --------------------------------------------------------------------------
    def _build(self, n_features: int) -> nn.Module:
        raise NotImplementedError

    def _optimizers(self, net: nn.Module) -> Any:
        raise NotImplementedError

    def _train_step(self, net: nn.Module, batch: torch.Tensor, epoch: int, opts: Any) -> float:
        raise NotImplementedError

    def _window_scores(self, net: nn.Module, batch: torch.Tensor, validation: bool) -> torch.Tensor:
        raise NotImplementedError


class LSTMAutoencoderDetector(_WindowedTorchDetector):
    """LSTM autoencoder over sliding windows; a row's score is the squared reconstruction error of
    its own (last) step, averaged over columns. See the module docstring for every convention."""

    name: ClassVar[str] = "lstm_ae"
    Config: ClassVar[type] = LSTMAutoencoderConfig

    def _build(self, n_features: int) -> nn.Module:
        c = self.config
        return _LSTMAutoencoder(n_features, c.hidden_size, c.latent_size, c.num_layers)

    def _optimizers(self, net: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(net.parameters(), lr=self.config.lr)

    def _train_step(self, net: nn.Module, batch: torch.Tensor, epoch: int,
                    opt: torch.optim.Optimizer) -> float:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((net(batch) - batch) ** 2)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _window_scores(self, net: nn.Module, batch: torch.Tensor, validation: bool) -> torch.Tensor:
        err = (net(batch) - batch) ** 2
        if validation:  # the training objective: every step of the window
            return err.mean(dim=(1, 2))
        return err[:, -1, :].mean(dim=1)


class USADDetector(_WindowedTorchDetector):
    """USAD (Audibert et al., KDD 2020) over flattened sliding windows; a row's score is
    α·||W − AE1(W)||² + β·||W − AE2(AE1(W))||² of the window ending at it (means over the last step,
    or over the whole window with ``last_step: false``)."""

    name: ClassVar[str] = "usad"
    Config: ClassVar[type] = USADConfig

    @staticmethod
    def _scaling(Xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Min-max scaling to [0, 1] on the training rows, as in the paper (the decoders end in a
        sigmoid); a constant column keeps scale 1. Later values outside the training range cannot be
        reconstructed and so score high."""
        lo, hi = Xi.min(axis=0), Xi.max(axis=0)
        rng = hi - lo
        return lo, np.where(rng > 1e-12 * (1.0 + np.abs(lo)), rng, 1.0)

    def _build(self, n_features: int) -> nn.Module:
        c = self.config
        return _USAD(n_features * c.window, c.hidden_size, c.latent_size)

    def _optimizers(self, net: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        lr = self.config.lr
        return (torch.optim.Adam([*net.encoder.parameters(), *net.decoder1.parameters()], lr=lr),
                torch.optim.Adam([*net.encoder.parameters(), *net.decoder2.parameters()], lr=lr))

    def _train_step(self, net: nn.Module, batch: torch.Tensor, epoch: int, opts: Any) -> float:
        opt1, opt2 = opts
        w = batch.flatten(1)
        a = 1.0 / epoch
        # phase 1 (AE1): reconstruct W, and make AE2 reconstruct AE1's output as if it were real
        opt1.zero_grad(set_to_none=True)
        w1, _, w3 = net(w)
        loss1 = a * _mse(w, w1) + (1 - a) * _mse(w, w3)
        loss1.backward()
        opt1.step()
        # phase 2 (AE2): reconstruct W, and tell AE1's reconstructions apart (a fresh forward pass
        # with the updated encoder, as in the paper's algorithm)
        opt2.zero_grad(set_to_none=True)
        _, w2, w3 = net(w)
        loss2 = a * _mse(w, w2) - (1 - a) * _mse(w, w3)
        loss2.backward()
        opt2.step()
        return float(loss1.detach())

    def _window_scores(self, net: nn.Module, batch: torch.Tensor, validation: bool) -> torch.Tensor:
        w = batch.flatten(1)
        w1, _, w3 = net(w)
        c = self.config
        e1, e3 = (w - w1) ** 2, (w - w3) ** 2
        if c.last_step:  # the flattened window is time-major: the last row is the last D entries
            d = batch.shape[2]
            e1, e3 = e1[:, -d:], e3[:, -d:]
        return c.alpha * e1.mean(dim=1) + c.beta * e3.mean(dim=1)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mean((a - b) ** 2)


__all__: list[str] = ["LSTMAutoencoderConfig", "LSTMAutoencoderDetector", "USADConfig", "USADDetector",
                      "window_index"]
