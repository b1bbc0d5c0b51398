"""Supervised root-cause rankers: a graph neural network (``gnn``) and its no-graph ablation (``mlp``).

Each case is one small graph: nodes are the case's services with the standardised-deviation features
of :mod:`otlp_aiops.rca.node_features`, edges the service dependency graph. The network gives one
logit per node; training minimises the cross-entropy of the softmax over the nodes of each case with
the labelled root cause as the target (a listwise ranking loss, ListNet/ListMLE-style with a single
relevant item). Messages flow both ways along every edge: a fault at a callee shows up at its callers
(latency and errors propagate upstream), and a caller that looks anomalous is less likely the root
when one of its callees looks worse.

The GNN and the MLP share the features, the loss and the training loop (:func:`train_node_ranker`);
only the module differs, so the ``mlp`` row of a table shows what the graph adds.

``gnn_unsup`` needs no labelled incident: a masked graph autoencoder trained on fault-free windows
to predict each service's per-window deviations from its neighbours' (GraphMAE-style masked feature
reconstruction: Hou et al., *GraphMAE: Self-Supervised Masked Graph Autoencoders*, KDD 2022), which
ranks the services of a case by how far their post-onset windows are from what their neighbours
predict, in units of the service's own fault-free reconstruction error (the idea of ranking by
deviation from a model of normal behaviour, as in MicroRCA/CIRCA-style scoring).

Edge features (the call graph's ``edge_windows``: client–server gap, calls, errors per caller →
callee) reach the network through ``conv: edge`` (an edge-conditioned mean aggregation, messages
``relu(W·h_caller + U·e)`` as in GINE/NNConv-style layers) or ``conv: gatv2`` (GATv2 attention with
edge attributes, Brody et al., ICLR 2022). A dataset without them gets their ``missing`` flags.

torch and torch_geometric are imported at the top: this module is loaded only through the registry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    # torch_geometric scripts a few helpers with torch.jit.script at import, which torch deprecates
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.script.*")
    import torch_geometric  # noqa: F401 - imported under the filter once, so later imports are silent
    from torch_geometric.nn import GATConv, GATv2Conv, MessagePassing, SAGEConv
    from torch_geometric.utils import to_dense_batch

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import FEATURE_KINDS, CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker
from otlp_aiops.rca.node_features import (
    DEFAULT_KINDS,
    MODES,
    _feature_stats,
    node_features,
    parse_groups,
    raw_scores,
    robust_z_soft_floor,
    selections,
    set_stats,
    window_features,
)
from otlp_aiops.torch_utils import (
    EarlyStopping,
    module_from_weights,
    numpy_weights,
    resolve_device,
    seeded_training,
    torch_threads,
)

log = logging.getLogger(__name__)

CONVS = ("sage", "gat", "edge", "gatv2")
EDGE_CONVS = ("edge", "gatv2")  # convs that read edge features
MESSAGES = ("both", "from_callees")  # which way messages flow: both, or only callee → caller
# edge feature sets over the edge_windows columns (globs): what a network fault changes on a call
DEFAULT_EDGE_GROUPS = ("gap=gap_mean|gap_p*", "calls=calls", "failed=errors|error_rate")
DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class NodeRankerConfig(RankerConfig):
    """What the GNN and the MLP share: node features, network width, optimiser, early stopping."""

    feature_mode: str = "kinds"  # kinds: dataset-agnostic (transferable) | all: every feature column
    kinds: tuple[str, ...] = DEFAULT_KINDS  # feature kinds used by feature_mode=kinds
    # extra feature sets "name=glob|glob" (feature_mode=kinds), e.g. "self=span.self_time_*"
    groups: tuple[str, ...] = ()
    # sets of features that already are scores vs the reference (log.mix_*): used as they are
    raw_groups: tuple[str, ...] = ()
    z_clip: float = 100.0  # robust z-scores are clipped to ±z_clip, then compressed by sign·log1p
    std_fallback: bool = True  # scale by the baseline's std where its MAD is 0 (sparse counts)
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.1
    lr: float = 0.01
    weight_decay: float = 1e-4
    epochs: int = 300  # upper bound; early stopping usually ends sooner
    batch_size: int = 16  # cases per optimiser step; 0 = all training cases in one batch
    val_fraction: float = 0.2  # training cases held out for early stopping (none when < 2 would remain)
    patience: int = 30  # epochs without a better validation loss before stopping
    device: str = "cpu"  # where training runs (cpu | cuda); ranking always runs on the CPU
    threads: int = 1  # torch CPU threads while fitting/ranking (graphs are tiny: 1 is fastest); 0 = torch's
    # a case in which a feature set (node or edge) is missing for every service while the training cases
    # had it (a metrics-only dataset under a model trained on traces and logs) is ranked by a model
    # refitted on the training cases with those sets masked as missing (docs/gnn.md, "Transfer")
    adapt_sets: bool = True

    def __post_init__(self) -> None:
        if self.feature_mode not in MODES:
            raise ConfigError(f"feature_mode {self.feature_mode!r} is not one of {', '.join(MODES)}")
        bad = [k for k in self.kinds if k not in FEATURE_KINDS]
        if bad or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ConfigError(
                f"kinds {list(self.kinds)} must be distinct values of {', '.join(FEATURE_KINDS)}"
            )
        _check_groups(self.groups, self.raw_groups)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device {self.device!r} is not cpu, cuda or cuda:<n>")
        for name in ("hidden", "layers", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 0 or self.patience < 1 or self.threads < 0:
            raise ConfigError("batch_size and threads must be >= 0, patience >= 1")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("dropout and val_fraction must lie in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0 or self.z_clip <= 0:
            raise ConfigError("lr and z_clip must be > 0, weight_decay >= 0")


def drop_sets(x: np.ndarray, drop: np.ndarray, per_set: int = 4) -> np.ndarray:
    """``x`` (N, per_set·G, compressed as the network sees it) with the sets where ``drop`` (G,) is
    True made to look absent, as on a dataset without them: their statistics 0, their ``missing``
    flag (each set's last column) at 1."""
    out = x.copy()
    for g in np.flatnonzero(drop):
        out[:, per_set * g : per_set * (g + 1) - 1] = 0.0
        out[:, per_set * (g + 1) - 1] = _compress(np.ones(1))[0]
    return out


def absent_sets(x: np.ndarray, per_set: int = 4) -> np.ndarray:
    """(G,) True for each set of ``x`` (N, per_set·G, compressed) whose ``missing`` flag is set on
    every row: the case has no data for it at all."""
    if not len(x):
        return np.ones(x.shape[1] // per_set, dtype=bool)
    return (x[:, per_set - 1 :: per_set] >= _compress(np.ones(1))[0]).all(axis=0)


def _check_groups(groups: Sequence[str], raw_groups: Sequence[str]) -> None:
    try:
        names = [n for n, _ in parse_groups(groups)] + [n for n, _ in parse_groups(raw_groups)]
    except ValueError as e:
        raise ConfigError(f"groups: {e}") from None
    if len(set(names)) != len(names):
        raise ConfigError(f"groups: a name appears twice in groups and raw_groups ({', '.join(names)})")


def _check_edge_groups(groups: Sequence[str]) -> None:
    try:
        parse_groups(groups)
    except ValueError as e:
        raise ConfigError(f"edge_groups: {e}") from None


@dataclass(frozen=True)
class GNNConfig(NodeRankerConfig):
    # sage (GraphSAGE, mean) | gat (graph attention) | edge (edge-conditioned mean)
    # | gatv2 (with edge features)
    conv: str = "sage"
    heads: int = 2  # attention heads (gat, gatv2; averaged)
    # edge feature sets (conv edge | gatv2), globs over edge_windows columns
    edge_groups: tuple[str, ...] = DEFAULT_EDGE_GROUPS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conv not in CONVS:
            raise ConfigError(f"conv {self.conv!r} is not one of {', '.join(CONVS)}")
        if self.heads < 1:
            raise ConfigError(f"heads must be at least 1, got {self.heads}")
        _check_edge_groups(self.edge_groups)


@dataclass(frozen=True)
class MLPConfig(NodeRankerConfig):
    pass


@dataclass(frozen=True)
class GNNUnsupConfig(RankerConfig):
    """The label-free ``gnn_unsup``: what it reconstructs, from how much fault-free data, and how."""

    kinds: tuple[str, ...] = DEFAULT_KINDS  # feature kinds, one node input set each
    groups: tuple[str, ...] = ()  # extra feature sets "name=glob|glob"
    # sets of features that already are scores vs the reference: used as they are
    raw_groups: tuple[str, ...] = ()
    # kinds added on data where no feature matches a group (metrics only)
    fallback_kinds: tuple[str, ...] = ()
    edge_groups: tuple[str, ...] = DEFAULT_EDGE_GROUPS  # edge feature sets (conv edge | gatv2)
    z_clip: float = 100.0
    std_fallback: bool = True
    # training pseudo-cases: baseline_windows fault-free windows (nearest in time) are the baseline
    # of a block of after_windows windows (their z-scores are the training windows)
    baseline_windows: int = 20
    after_windows: int = 5
    max_windows: int = 3000  # at most this many training windows (a seeded subsample beyond)
    mask_rate: float = 0.25  # share of services masked per training window (at least one)
    window_stat: str = "mean"  # per-service score over the case's post-onset windows: mean | max
    # a service is predicted from its callees only (from_callees) or from both sides
    messages: str = "from_callees"
    conv: str = "edge"  # sage | gat | edge | gatv2
    heads: int = 2
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.0
    lr: float = 0.005
    weight_decay: float = 1e-4
    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # windows per optimiser step
    val_fraction: float = 0.2  # training windows held out for early stopping and the error scale
    patience: int = 10
    device: str = "cpu"  # where training runs (cpu | cuda); ranking always runs on the CPU
    threads: int = 1

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in FEATURE_KINDS]
        if (
            bad
            or len(set(self.kinds)) != len(self.kinds)
            or not (self.kinds or self.groups or self.raw_groups)
        ):
            raise ConfigError(
                f"kinds {list(self.kinds)} must be distinct values of {', '.join(FEATURE_KINDS)}"
            )
        _check_groups(self.groups, self.raw_groups)
        _check_edge_groups(self.edge_groups)
        if any(k not in FEATURE_KINDS for k in self.fallback_kinds):
            raise ConfigError(
                f"fallback_kinds {list(self.fallback_kinds)} must be values of {', '.join(FEATURE_KINDS)}"
            )
        if self.conv not in CONVS:
            raise ConfigError(f"conv {self.conv!r} is not one of {', '.join(CONVS)}")
        if self.messages not in MESSAGES:
            raise ConfigError(f"messages {self.messages!r} is not one of {', '.join(MESSAGES)}")
        if self.window_stat not in ("mean", "max"):
            raise ConfigError(f"window_stat {self.window_stat!r} is not mean or max")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"device {self.device!r} is not cpu, cuda or cuda:<n>")
        for name in (
            "hidden",
            "layers",
            "epochs",
            "heads",
            "baseline_windows",
            "after_windows",
            "max_windows",
            "batch_size",
            "patience",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.baseline_windows < 3:
            raise ConfigError("baseline_windows must be at least 3 (a median and a MAD)")
        if not 0.0 < self.mask_rate < 1.0:
            raise ConfigError("mask_rate must lie in (0, 1)")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.val_fraction < 1.0 or self.threads < 0:
            raise ConfigError("dropout and val_fraction must lie in [0, 1), threads >= 0")
        if self.lr <= 0 or self.weight_decay < 0 or self.z_clip <= 0:
            raise ConfigError("lr and z_clip must be > 0, weight_decay >= 0")


# --------------------------------------------------------------------------------------- modules


class EdgeConv(MessagePassing):
    """Edge-conditioned mean aggregation: ``h_i' = mean_j relu(W·h_j + U·e_ji)`` over the edges j → i
    (GINE-style messages, Hu et al., ICLR 2020, with mean instead of sum aggregation so the scale
    does not grow with a service's fan-in). Without edge features (``edge_dim`` 0): ``relu(W·h_j)``."""

    def __init__(self, channels: int, edge_dim: int) -> None:
        super().__init__(aggr="mean")
        self.lin = nn.Linear(channels, channels)
        self.lin_edge = nn.Linear(edge_dim, channels, bias=False) if edge_dim > 0 else None

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.propagate(edge_index, x=self.lin(x), edge_attr=edge_attr)

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor | None) -> torch.Tensor:
        if self.lin_edge is not None and edge_attr is not None:
            x_j = x_j + self.lin_edge(edge_attr)
        return torch.relu(x_j)


class GraphRootCauseNet(nn.Module):
    """Encoder → ``layers`` bidirectional message-passing blocks (residual) → ``out_dim`` per node.

    Each block sums a conv over the caller → callee edges, a conv over the reversed edges and a
    linear map of the node itself, so a node hears from its callers and its callees separately.
    ``conv`` edge / gatv2 read ``edge_attr`` (E, edge_dim); sage / gat ignore it."""

    def __init__(
        self,
        in_dim: int,
        hidden: int = 32,
        layers: int = 2,
        conv: str = "sage",
        dropout: float = 0.1,
        heads: int = 2,
        edge_dim: int = 0,
        out_dim: int = 1,
        messages: str = "both",
    ) -> None:
        super().__init__()
        if messages not in MESSAGES:
            raise ValueError(f"messages {messages!r} is not one of {', '.join(MESSAGES)}")
        self.encoder = nn.Linear(in_dim, hidden)
        self.uses_edges = conv in EDGE_CONVS and edge_dim > 0
        self.messages = messages

        def make_conv() -> nn.Module:
            if conv == "sage":
                return SAGEConv(hidden, hidden, aggr="mean", root_weight=False)
            if conv == "gat":
                return GATConv(hidden, hidden, heads=heads, concat=False, add_self_loops=False)
            if conv == "gatv2":
                return GATv2Conv(
                    hidden,
                    hidden,
                    heads=heads,
                    concat=False,
                    add_self_loops=False,
                    edge_dim=edge_dim if edge_dim > 0 else None,
                )
            return EdgeConv(hidden, edge_dim)

        # messages along caller → callee (unused, but kept in the state, with messages=from_callees)
        self.to_callee = nn.ModuleList(make_conv() for _ in range(layers))
        self.to_caller = nn.ModuleList(make_conv() for _ in range(layers))  # along callee → caller
        self.self_lin = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, out_dim)
        self.out_dim = out_dim

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None = None
    ) -> torch.Tensor:
        reverse = edge_index.flip(0)
        h = torch.relu(self.encoder(x))
        ea = edge_attr if self.uses_edges else None
        for down, up, lin in zip(self.to_callee, self.to_caller, self.self_lin, strict=True):
            kw = {"edge_attr": ea} if ea is not None else {}
            msg = up(h, reverse, **kw)  # what the callees say
            if self.messages == "both":
                msg = msg + down(h, edge_index, **kw)
            h = h + self.dropout(torch.relu(lin(h) + msg))
        out = self.head(h)
        return out.squeeze(-1) if self.out_dim == 1 else out


class NodeMLP(nn.Module):
    """The ablation: the same encoder, residual blocks and head, each node on its own (no edges)."""

    def __init__(self, in_dim: int, hidden: int = 32, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor | None = None, edge_attr: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = torch.relu(self.encoder(x))
        for lin in self.blocks:
            h = h + self.dropout(torch.relu(lin(h)))
        return self.head(h).squeeze(-1)


# --------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class CaseGraph:
    """One case as the network sees it: node inputs, edges, and the root cause's node (or -1)."""

    case_id: str
    x: np.ndarray  # (S, D) float32
    edge_index: np.ndarray  # (2, E) int64, caller → callee
    target: int = -1
    edge_attr: np.ndarray | None = None  # (E, De) float32


def _collate(graphs: Sequence[CaseGraph], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Stack cases into one disjoint graph: x, edge_index (offset per case), batch vector, targets,
    edge attributes (None when the cases have none)."""
    xs, eis, batch, offset = [], [], [], 0
    for k, g in enumerate(graphs):
        xs.append(g.x)
        eis.append(g.edge_index + offset)
        batch.append(np.full(len(g.x), k, dtype=np.int64))
        offset += len(g.x)
    x = torch.from_numpy(np.concatenate(xs)).to(device)
    ei = torch.from_numpy(np.concatenate(eis, axis=1)).to(device)
    b = torch.from_numpy(np.concatenate(batch)).to(device)
    y = torch.tensor([g.target for g in graphs], dtype=torch.long, device=device)
    ea = None
    if graphs and graphs[0].edge_attr is not None:
        ea = torch.from_numpy(np.concatenate([g.edge_attr for g in graphs])).to(device)
    return x, ei, b, y, ea


def listwise_loss(logits: torch.Tensor, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over cases of −log softmax(logits of the case's nodes)[root cause]."""
    dense, mask = to_dense_batch(logits.unsqueeze(-1), batch)
    dense = dense.squeeze(-1).masked_fill(~mask, float("-inf"))
    return nn.functional.cross_entropy(dense, targets)


def train_node_ranker(
    module: nn.Module, graphs: Sequence[CaseGraph], cfg: NodeRankerConfig, *, seed: int, device: torch.device
) -> dict[str, Any]:
    """Train ``module`` (GNN or MLP) on labelled case graphs with the listwise loss, Adam, seeded
    mini-batches and early stopping on a held-out fraction of the cases; the best epoch's weights are
    left in ``module``. Returns what happened (epochs, losses, split sizes, seconds)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(graphs))
    n_val = round(cfg.val_fraction * len(graphs))
    if n_val < 1 or len(graphs) - n_val < 2:
        n_val = 0
    val = [graphs[i] for i in order[:n_val]]
    train = [graphs[i] for i in order[n_val:]]
    val_batch = _collate(val, device) if val else None
    bs = cfg.batch_size or len(train)

    module.to(device)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper = EarlyStopping(cfg.patience, start_epoch=-1)
    history: list[tuple[float, float]] = []
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        module.train()
        perm = rng.permutation(len(train))
        total = 0.0
        for lo in range(0, len(train), bs):
            chunk = [train[i] for i in perm[lo : lo + bs]]
            x, ei, b, y, ea = _collate(chunk, device)
            opt.zero_grad()
            loss = listwise_loss(module(x, ei, ea), b, y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(chunk)
        train_loss = total / len(train)
        if val_batch is None:
            history.append((train_loss, math.nan))
            continue
        module.eval()
        with torch.no_grad():
            x, ei, b, y, ea = val_batch
            val_loss = float(listwise_loss(module(x, ei, ea), b, y))
        history.append((train_loss, val_loss))
        if stopper.step(epoch, val_loss, module):
            break
    stopper.restore(module)
    module.eval()
    return {
        "epochs_run": epoch,
        "best_epoch": stopper.best_epoch if stopper.improved else epoch,
        "best_val_loss": stopper.best_loss if stopper.improved else None,
        "final_train_loss": history[-1][0] if history else None,
        "n_train": len(train),
        "n_val": len(val),
        "device": str(device),
        "train_seconds": time.perf_counter() - t0,
        "history": [[float(a), float(v)] for a, v in history],
    }


# --------------------------------------------------------------------------------------- rankers


def _compress(x: np.ndarray) -> np.ndarray:
    """sign·log1p|x|: unit-free z statistics on a bounded scale, the same for every dataset."""
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


def graph_edges(case: CaseData | ReferenceData) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The (2, E) caller → callee ``edge_index`` over ``case.services`` (the graph's edges between
    the case's services, in the graph's order) and those (caller, callee) pairs."""
    pos = {s: i for i, s in enumerate(case.services)}
    keep = [(a, b) for a, b in case.graph.edges if a in pos and b in pos]
    ei = np.array([[pos[a] for a, _ in keep], [pos[b] for _, b in keep]], dtype=np.int64).reshape(2, -1)
    return ei, keep


def _edge_series(obj: CaseData | ReferenceData) -> Any:
    """The per-edge window series a case or reference carries (``obj.edges``: ``pairs``,
    ``features``, ``values`` (T, E, Fe) and, on a case, ``reference`` (R, E, Fe)), or None when
    the dataset has none (no traces: metrics-only datasets)."""
    e = getattr(obj, "edges", None)
    if e is None or not len(getattr(e, "pairs", ())) or not len(getattr(e, "features", ())):
        return None
    return e


def _align_edges(
    rows: np.ndarray,
    data_pairs: Sequence[tuple[str, str]],
    pairs: Sequence[tuple[str, str]],
    fill: np.ndarray,
) -> np.ndarray:
    """Rows (…, E_data, D) re-ordered onto ``pairs`` (…, E, D); a pair without data gets ``fill``."""
    idx = {p: i for i, p in enumerate(data_pairs)}
    out = np.broadcast_to(fill, (*rows.shape[:-2], len(pairs), rows.shape[-1])).copy()
    for j, p in enumerate(pairs):
        i = idx.get(tuple(p))
        if i is not None:
            out[..., j, :] = rows[..., i, :]
    return out


def _missing_fill(n_sets: int, per_set: int) -> np.ndarray:
    """The feature row of an edge without data: zeros, with each set's ``missing`` flag (last) at 1."""
    fill = np.zeros(n_sets * per_set)
    fill[per_set - 1 :: per_set] = 1.0
    return fill


def _edge_z(case: CaseData, *, z_clip: float, std_fallback: bool) -> tuple[Any, np.ndarray] | None:
    """(the case's edge series, robust z (T_after, E_data, Fe) of its post-onset windows against its
    baseline — the reference windows when the case has any, else the pre-onset ones), or None."""
    e = _edge_series(case)
    if e is None:
        return None
    values = np.asarray(e.values, dtype=np.float64)
    ref = np.asarray(e.reference, dtype=np.float64) if getattr(e, "reference", None) is not None else None
    base = ref if len(case.reference) and ref is not None and len(ref) else values[: case.onset]
    if len(base) == 0 or len(values) <= case.onset:
        return None
    return e, robust_z_soft_floor(values[case.onset :], base, z_clip=z_clip, std_fallback=std_fallback)


def edge_case_features(
    case: CaseData,
    pairs: Sequence[tuple[str, str]],
    edge_groups: Sequence[str],
    *,
    z_clip: float = 100.0,
    std_fallback: bool = True,
) -> np.ndarray:
    """(E, 4·G) case-level edge features over ``pairs``: per edge feature set ``max_abs``,
    ``mean_abs``, ``mean``, ``missing``, as the node features (an edge without data: missing)."""
    groups = parse_groups(edge_groups)
    fill = _missing_fill(len(groups), 4)
    ez = _edge_z(case, z_clip=z_clip, std_fallback=std_fallback)
    if ez is None:
        return np.broadcast_to(fill, (len(pairs), len(fill))).copy()
    e, z = ez
    sels = selections(e.features, ["other"] * len(e.features), (), edge_groups)
    peak, level, shift, usable = _feature_stats(z)
    x, _ = set_stats(peak, level, shift, usable, sels)
    return _align_edges(x, e.pairs, pairs, fill)


class _NodeRanker(RootCauseRanker):
    """The RCA contract around a node-scoring module; subclasses say which module."""

    Config: ClassVar[type] = NodeRankerConfig
    supervised: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True

    def _build(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    def _uses_edges(self) -> bool:
        return getattr(self.config, "conv", None) in EDGE_CONVS

    def _case_graph(self, case: CaseData, target: int = -1) -> tuple[CaseGraph, Any]:
        cfg = self.config
        nf = node_features(
            case,
            cfg.feature_mode,
            kinds=cfg.kinds,
            groups=cfg.groups,
            raw_groups=cfg.raw_groups,
            z_clip=cfg.z_clip,
            std_fallback=cfg.std_fallback,
        )
        x = nf.x
        trained = getattr(self, "feature_columns_", None)
        if cfg.feature_mode == "all" and trained is not None and nf.columns != trained:
            pos = {c: i for i, c in enumerate(nf.columns)}
            missing = [c.rsplit(".", 1)[0] for c in trained if c not in pos]
            if missing:
                raise ValueError(
                    f"case {case.case_id}: feature_mode=all was trained on other features; missing "
                    f"{sorted(set(missing))[:5]} (use feature_mode=kinds to apply a model across datasets)"
                )
            x = x[:, [pos[c] for c in trained]]
        ei, pairs = graph_edges(case)
        ea = None
        if self._uses_edges():
            ea = _compress(
                edge_case_features(
                    case, pairs, cfg.edge_groups, z_clip=cfg.z_clip, std_fallback=cfg.std_fallback
                )
            )
        return CaseGraph(case.case_id, _compress(x), ei, target, ea), nf

    def _device(self) -> torch.device:
        return resolve_device(self.config.device, self.name)

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        device = self._device()
        self.feature_columns_ = None  # a refit starts from nothing
        graphs, skipped, columns = [], [], None
        for case in train_cases:
            if case.root_cause_service not in case.services:
                skipped.append(case.case_id)
                continue
            g, nf = self._case_graph(case, case.services.index(case.root_cause_service))
            if columns is None:
                columns = nf.columns
            elif nf.columns != columns:
                raise ValueError(
                    f"case {case.case_id}: node feature columns differ from the first training "
                    "case's (feature_mode=all needs one dataset's features)"
                )
            graphs.append(g)
        if skipped:
            log.warning(
                "%s: %d of %d training cases skipped: root cause not among their services (%s)",
                self.name,
                len(skipped),
                len(train_cases),
                ", ".join(skipped[:5]),
            )
        if not graphs:
            raise ValueError(
                f"{self.name}: none of the {len(train_cases)} training cases has its root cause "
                "among its services"
            )
        self.feature_columns_ = columns
        # kept for the refit on a case that lacks sets the training had (adapt_sets; a few MB at most)
        self.train_graphs_ = tuple(graphs) if self.config.adapt_sets else None
        self._fit_graphs(graphs, device, n_cases=len(train_cases), skipped=skipped)

    def _fit_graphs(
        self, graphs: list[CaseGraph], device: torch.device, *, n_cases: int, skipped: list[str]
    ) -> None:
        """Train a fresh module on labelled case graphs: ``weights_``, ``train_info_``."""
        with seeded_training(self.seed, device, threads=self.config.threads):
            module = self._build(graphs[0].x.shape[1])
            info = train_node_ranker(module, graphs, self.config, seed=self.seed, device=device)
        info.update(n_cases=n_cases, skipped_cases=len(skipped), skipped_case_ids=skipped)
        # weights as numpy: a model trained on a GPU saves, loads and ranks on a CPU
        self.weights_ = numpy_weights(module)
        self.train_info_ = info
        self._module = None
        self._adapted = {}  # refits for cases lacking feature sets (_module_for)
        self.__dict__.pop("_train_absent_sets", None)

    def _cpu_module(self) -> nn.Module:
        if getattr(self, "_module", None) is None:
            self._module = module_from_weights(self._build(len(self.feature_columns_)), self.weights_)
        return self._module

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._module = None
        self._adapted = {}
        self.__dict__.pop("_train_absent_sets", None)

    def _train_absent(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The node and edge feature sets absent from every training graph (the edge mask is ``None``
        when no training graph has an edge), computed once per fitted model."""
        cached = self.__dict__.get("_train_absent_sets")
        if cached is None:
            train = self.train_graphs_
            edges = [absent_sets(t.edge_attr) for t in train if t.edge_attr is not None and len(t.edge_attr)]
            cached = (
                np.logical_and.reduce([absent_sets(t.x) for t in train]),
                np.logical_and.reduce(edges) if edges else None,
            )
            self.__dict__["_train_absent_sets"] = cached
        return cached

    def _module_for(self, g: CaseGraph) -> nn.Module:
        """The module that ranks case graph ``g``: the fitted one, or — where ``g`` lacks (for every
        service, or every edge) feature sets that some training case had — one refitted on the
        training graphs with those sets masked as missing (:func:`drop_sets`), with the same seed and
        settings, cached per combination of absent sets. The model then learns from what the target
        dataset can show, instead of reading "this signal is absent everywhere" as evidence."""
        train = getattr(self, "train_graphs_", None)
        if not self.config.adapt_sets or not train:
            return self._cpu_module()
        train_absent, train_edge_absent = self._train_absent()
        drop = absent_sets(g.x) & ~train_absent
        edrop = np.zeros(0, dtype=bool)
        if g.edge_attr is not None and len(g.edge_attr) and train[0].edge_attr is not None:
            if train_edge_absent is None:
                train_edge_absent = np.ones(g.edge_attr.shape[1] // 4, dtype=bool)
            edrop = absent_sets(g.edge_attr) & ~train_edge_absent
        if not drop.any() and not edrop.any():
            return self._cpu_module()
        key = (drop.tobytes(), edrop.tobytes())
        cache = self.__dict__.setdefault("_adapted", {})
        if key not in cache:
            masked = [
                dataclasses.replace(
                    t,
                    x=drop_sets(t.x, drop),
                    edge_attr=(drop_sets(t.edge_attr, edrop) if edrop.any() else t.edge_attr),
                )
                for t in train
            ]
            sub = type(self)(self.config, seed=self.seed)
            sub.feature_columns_ = self.feature_columns_
            sub._fit_graphs(masked, self._device(), n_cases=len(masked), skipped=[])
            log.info(
                "%s: refitted without the %d node and %d edge feature sets the case lacks",
                self.name,
                int(drop.sum()),
                int(edrop.sum()),
            )
            cache[key] = sub._cpu_module()
        return cache[key]

    def _rank(self, case: CaseData) -> RankedCauses:
        g, nf = self._case_graph(case)
        module = self._module_for(g)
        with torch.no_grad(), torch_threads(self.config.threads):
            ea = torch.from_numpy(g.edge_attr) if g.edge_attr is not None else None
            logits = module(torch.from_numpy(g.x), torch.from_numpy(g.edge_index), ea)
            scores = torch.log_softmax(logits.double(), dim=0).numpy()
        ranked = RankedCauses.from_scores(case.services, scores)
        pos = {s: i for i, s in enumerate(case.services)}
        indicators = tuple(
            (s, nf.top_feature[pos[s]], float(sc))
            for s, sc in zip(ranked.services, ranked.scores, strict=True)
            if nf.top_feature[pos[s]] is not None
        )
        return dataclasses.replace(ranked, indicators=indicators)


class GNNRanker(_NodeRanker):
    """Root-cause ranking with a bidirectional GraphSAGE / GAT network trained on labelled incidents."""

    name: ClassVar[str] = "gnn"
    Config: ClassVar[type] = GNNConfig

    def _build(self, in_dim: int) -> nn.Module:
        c = self.config
        edge_dim = 4 * len(c.edge_groups) if c.conv in EDGE_CONVS else 0
        return GraphRootCauseNet(in_dim, c.hidden, c.layers, c.conv, c.dropout, c.heads, edge_dim=edge_dim)


class MLPRanker(_NodeRanker):
    """The GNN's ablation: the same features, loss and training, one MLP per node, no graph."""

    name: ClassVar[str] = "mlp"
    Config: ClassVar[type] = MLPConfig

    def _build(self, in_dim: int) -> nn.Module:
        c = self.config
        return NodeMLP(in_dim, c.hidden, c.layers, c.dropout)


# --------------------------------------------------------------------------------------- label-free


@dataclass(frozen=True)
class WindowSet:
    """Per-window inputs of the masked autoencoder over one graph: node values (N, S, 2G), node
    ``missing`` flags (N, S, G), edge values (N, E, 2Ge) and edge ``missing`` flags (N, E, Ge), already
    compressed; ``edge_index`` (2, E) is shared by every window."""

    x: np.ndarray
    missing: np.ndarray
    edge_x: np.ndarray
    edge_missing: np.ndarray
    edge_index: np.ndarray


def _window_block(
    after: np.ndarray,
    base: np.ndarray,
    sels,
    edge_after: np.ndarray | None,
    edge_base: np.ndarray | None,
    edge_sels,
    edge_rows: Any,
    edge_dst: np.ndarray,
    *,
    z_clip: float,
    std_fallback: bool,
) -> tuple[np.ndarray, ...]:
    """z of ``after`` against ``base`` → window features of nodes and edges (edges aligned by
    ``edge_rows``: (data pairs, pairs) or None when there are no edge data; ``edge_dst``: the callee
    of each graph edge). Node values: the node sets, then the incoming-edge sets."""
    n_edges = len(edge_dst)
    z = robust_z_soft_floor(after, base, z_clip=z_clip, std_fallback=std_fallback)
    sels, raw_sels = sels
    vx, miss = window_features(z, sels)
    if raw_sels:
        rx, rmiss = window_features(raw_scores(after, z_clip), raw_sels)
        vx, miss = np.concatenate([vx, rx], axis=2), np.concatenate([miss, rmiss], axis=1)
    n_windows, n_services = len(after), z.shape[1]
    n_edge_sets = len(edge_sels) if edge_sels is not None else 0
    ex = np.zeros((n_windows, n_edges, 2 * n_edge_sets))
    em = np.ones((n_windows, n_edges, n_edge_sets))
    if edge_rows is not None and edge_after is not None and edge_base is not None and len(edge_base):
        ez = robust_z_soft_floor(edge_after, edge_base, z_clip=z_clip, std_fallback=std_fallback)
        evx, emiss = window_features(ez, edge_sels)
        data_pairs, pairs = edge_rows
        ex = _align_edges(evx, data_pairs, pairs, np.zeros(2 * n_edge_sets))
        em = np.broadcast_to(
            _align_edges(emiss[None], data_pairs, pairs, np.ones(n_edge_sets)),
            (n_windows, n_edges, n_edge_sets),
        ).copy()
    # each service also owns the edge sets of the calls into it (its incoming edge with the largest
    # |z| per set): a fault that shows only on a call (a callee's network) is then reconstructed too
    in_x = np.zeros((n_windows, n_services, 2 * n_edge_sets))
    in_m = np.ones((n_services, n_edge_sets))
    for j, callee in enumerate(edge_dst):
        for g in range(n_edge_sets):
            if em[0, j, g]:
                continue
            better = np.abs(ex[:, j, 2 * g]) > np.abs(in_x[:, callee, 2 * g])
            in_x[:, callee, 2 * g : 2 * g + 2] = np.where(
                better[:, None], ex[:, j, 2 * g : 2 * g + 2], in_x[:, callee, 2 * g : 2 * g + 2]
            )
            in_m[callee, g] = 0.0
    vx = np.concatenate([vx, in_x], axis=2)
    miss = np.concatenate([miss, in_m], axis=1)
    return (
        _compress(vx),
        np.broadcast_to(miss, (n_windows, *miss.shape)).astype(np.float32),
        _compress(ex),
        em.astype(np.float32),
        z,
    )


def _masked_inputs(
    ws_x: torch.Tensor,
    ws_miss: torch.Tensor,
    ws_ex: torch.Tensor,
    ws_em: torch.Tensor,
    edge_index: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched inputs for B windows (B, S, ·) with ``mask`` (B, S) bool: masked nodes lose their
    values (their ``missing`` flags stay: which signals a service has is not what is predicted) and
    get a mask flag; edges touching a masked node lose theirs too (a callee's gap would give the
    callee away). Returns x (B·S, 3G+1), edge_index (2, B·E) offset per window, edge_attr (B·E, 3Ge+1)."""
    n_batch, n_services, _ = ws_x.shape
    m = mask.to(ws_x.dtype).unsqueeze(-1)
    x = torch.cat([ws_x * (1 - m), ws_miss, m], dim=-1).reshape(n_batch * n_services, -1)
    src, dst = edge_index
    em = (mask[:, src] | mask[:, dst]).to(ws_x.dtype).unsqueeze(-1)  # (B, E, 1)
    ea = torch.cat([ws_ex * (1 - em), ws_em, em], dim=-1)
    ea = ea.reshape(n_batch * src.numel(), ea.shape[-1])  # explicit width: a graph may have no edge
    offsets = (torch.arange(n_batch, device=ws_x.device) * n_services).repeat_interleave(src.numel())
    ei = edge_index.repeat(1, n_batch) + offsets
    return x, ei, ea


def _node_errors(
    module: nn.Module,
    ws_x: torch.Tensor,
    ws_miss: torch.Tensor,
    ws_ex: torch.Tensor,
    ws_em: torch.Tensor,
    edge_index: torch.Tensor,
    chunk: int = 8,
) -> torch.Tensor:
    """(N, S) squared reconstruction error of each service in each window with that service alone
    masked (S copies of each window's graph, service k masked in copy k), summed over the values of
    the service's usable feature sets."""
    n_windows, n_services, _ = ws_x.shape
    eye = torch.eye(n_services, dtype=torch.bool, device=ws_x.device)
    out = []
    for lo in range(0, n_windows, chunk):
        sl = slice(lo, min(n_windows, lo + chunk))
        n = sl.stop - sl.start
        # S copies of each window: (n·S, S or E, ·)
        x, ei, ea = _masked_inputs(
            *(t[sl].repeat_interleave(n_services, dim=0) for t in (ws_x, ws_miss, ws_ex, ws_em)),
            edge_index,
            eye.repeat(n, 1),
        )
        pred = module(x, ei, ea).reshape(n, n_services, n_services, -1)
        # (n, S, 2G): copy k's prediction of service k
        diag = pred[:, torch.arange(n_services), torch.arange(n_services)]
        w = (1 - ws_miss[sl]).repeat_interleave(2, dim=-1)
        out.append(((diag - ws_x[sl]) ** 2 * w).sum(-1))
    return torch.cat(out) if out else torch.zeros((0, n_services), device=ws_x.device)


class GNNUnsupRanker(RootCauseRanker):
    """Label-free multi-modal GNN: a masked graph autoencoder of fault-free behaviour.

    Training (``fit(reference)``, no labels): the dataset's fault-free windows are cut into
    pseudo-cases — ``baseline_windows`` windows, then the next ``after_windows`` — and each window's
    per-service deviations from its pseudo-baseline become node inputs: for every feature kind and
    group, the largest robust |z| and the signed z of that feature (``window_features``), and a
    ``missing`` flag. Edge inputs are the same for the edge feature sets (client–server gap, calls,
    errors of each call edge) where the dataset has them. A random ``mask_rate`` of the services of a
    window is hidden (their values and their edges' values zeroed, a mask flag set) and the network
    (the bidirectional :class:`GraphRootCauseNet`, ``2·G`` outputs per node) learns to predict them
    from the rest of the graph (masked feature reconstruction, Hou et al., KDD 2022), MSE over the
    usable sets. Then each service's reconstruction error with it alone masked is measured on the
    held-out windows: its median and robust spread are the service's normal error.

    Ranking: the post-onset windows of a case against its baseline give the same inputs; the score of
    a service is the mean (``window_stat``) over those windows of its error z-score
    ``(e − median) / spread``: how much worse than usual its neighbours explain it. A deviation that
    the graph predicts (a caller slowed by its callee) scores low; one nothing around it explains
    scores high. Services the training never saw use the median of the others' error statistics.
    """

    name: ClassVar[str] = "gnn_unsup"
    Config: ClassVar[type] = GNNUnsupConfig
    stochastic: ClassVar[bool] = True

    # ------------------------------------------------------------------ inputs

    def _sels(self, features: Sequence[str], feature_kinds: Sequence[str]) -> tuple[list, list]:
        """(z-scored sets: kinds and groups; raw sets)."""
        return (
            selections(features, feature_kinds, self._kinds(), self.config.groups),
            selections(features, feature_kinds, (), self.config.raw_groups) if self.config.raw_groups else [],
        )

    def _edge_sels(self, e: Any) -> list | None:
        if e is None:
            return None
        return selections(e.features, ["other"] * len(e.features), (), self.config.edge_groups)

    def _n_groups(self) -> tuple[int, int]:
        """(node value sets: kinds, groups and the incoming-edge sets; edge sets)."""
        c = self.config
        n_edge_sets = len(c.edge_groups)
        return len(self._kinds()) + len(c.groups) + len(c.raw_groups) + n_edge_sets, n_edge_sets

    def _kinds(self) -> tuple[str, ...]:
        """The kinds in use: the fitted ``kinds_`` (``kinds``, plus ``fallback_kinds`` on data without
        any feature of the groups), else the configured ones."""
        return tuple(getattr(self, "kinds_", None) or self.config.kinds)

    def _training_windows(self, reference: ReferenceData) -> tuple[WindowSet, int]:
        cfg = self.config
        values = np.asarray(reference.values, dtype=np.float64)
        n_windows = len(values)
        sels = self._sels(reference.features, reference.feature_kinds)
        ei, pairs = graph_edges(reference)
        e = _edge_series(reference)
        esels = self._edge_sels(e)
        n_node_sets, _ = self._n_groups()
        if esels is None:
            esels = [(lbl, np.zeros(0, dtype=bool)) for lbl, _ in parse_groups(cfg.edge_groups)]
        evalues = np.asarray(e.values, dtype=np.float64) if e is not None else None
        rows = (e.pairs, pairs) if e is not None else None
        n_base, n_after = cfg.baseline_windows, cfg.after_windows
        if n_windows < 4:
            raise ValueError(
                f"{self.name}: the reference of {reference.dataset} has {n_windows} fault-free "
                "windows; at least 4 are needed (3 for a baseline, 1 to learn from)"
            )
        if n_windows < n_base + 1:
            log.warning(
                "%s: %s has %d fault-free windows; pseudo-case baselines of %d instead of "
                "baseline_windows=%d",
                self.name,
                reference.dataset,
                n_windows,
                n_windows - 1,
                n_base,
            )
            n_base = n_windows - 1
        # pseudo-cases over the time-ordered fault-free windows: each block of n_after windows against the
        # n_base fault-free windows just before it (after it, for the first blocks) — across gaps between
        # segments, as the features stage takes the nearest fault-free windows as a case's reference
        order_t = np.argsort(np.asarray(reference.times), kind="stable")
        blocks = []
        for lo in range(0, n_windows, n_after):
            a_idx = order_t[lo : lo + n_after]
            b_pos = np.arange(max(0, lo - n_base), lo)
            if len(b_pos) < n_base:
                # too few before the block: take the rest from just after it
                b_pos = np.concatenate(
                    [
                        b_pos,
                        np.arange(lo + len(a_idx), min(n_windows, lo + len(a_idx) + n_base - len(b_pos))),
                    ]
                )
            b_idx = order_t[b_pos]
            blk = _window_block(
                values[a_idx],
                values[b_idx],
                sels,
                evalues[a_idx] if evalues is not None else None,
                evalues[b_idx] if evalues is not None else None,
                esels,
                rows,
                ei[1],
                z_clip=cfg.z_clip,
                std_fallback=cfg.std_fallback,
            )
            keep = np.isfinite(values[a_idx]).any(axis=(1, 2))  # windows with any data
            if keep.any():
                blocks.append(tuple(b[keep] for b in blk[:4]))
        if not blocks:
            raise ValueError(f"{self.name}: no fault-free window of {reference.dataset} has any data")
        ws = WindowSet(*(np.concatenate([b[i] for b in blocks]) for i in range(4)), edge_index=ei)
        return ws, n_node_sets

    # ------------------------------------------------------------------ fit

    def _device(self) -> torch.device:
        return resolve_device(self.config.device, self.name)

    def _build(self) -> nn.Module:
        c = self.config
        n_node_sets, n_edge_sets = self._n_groups()
        edge_dim = 3 * n_edge_sets + 1 if c.conv in EDGE_CONVS else 0
        return GraphRootCauseNet(
            3 * n_node_sets + 1,
            c.hidden,
            c.layers,
            c.conv,
            c.dropout,
            c.heads,
            edge_dim=edge_dim,
            out_dim=2 * n_node_sets,
            messages=c.messages,
        )

    def _fit(self, reference: ReferenceData | None, train_cases: list[CaseData]) -> None:
        cfg = self.config
        if reference is None or len(reference.values) == 0:
            raise ValueError(
                f"{self.name} learns fault-free behaviour: fit() needs the dataset's reference "
                "(fault-free) windows"
            )
        t0 = time.perf_counter()
        device = self._device()
        # metrics-only data (no trace or log feature matches a group): the fallback kinds join in
        pats = [p for _, ps in parse_groups(cfg.groups) + parse_groups(cfg.raw_groups) for p in ps]
        has_groups = any(fnmatch.fnmatchcase(f, p) for f in reference.features for p in pats)
        extra = () if has_groups else tuple(k for k in cfg.fallback_kinds if k not in cfg.kinds)
        self.kinds_ = tuple(cfg.kinds) + extra
        ws, _ = self._training_windows(reference)
        rng = np.random.default_rng(self.seed)
        n = len(ws.x)
        order = rng.permutation(n)
        if n > cfg.max_windows:
            order = order[: cfg.max_windows]
            n = cfg.max_windows
        n_val = round(cfg.val_fraction * n)
        if n_val < 2 or n - n_val < 2:
            n_val = 0
        val_idx, train_idx = np.sort(order[:n_val]), order[n_val:]
        n_services = ws.x.shape[1]
        tens = [
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)
            for a in (ws.x, ws.missing, ws.edge_x, ws.edge_missing)
        ]
        ei = torch.from_numpy(ws.edge_index).to(device)

        def draw_mask(k: int) -> torch.Tensor:
            m = rng.random((k, n_services)) < cfg.mask_rate
            none = ~m.any(axis=1)
            m[none, rng.integers(0, n_services, size=int(none.sum()))] = True
            return torch.from_numpy(m).to(device)

        def loss_of(module: nn.Module, idx: np.ndarray, mask: torch.Tensor) -> torch.Tensor:
            it = torch.from_numpy(idx).to(device)
            x, xm, ex, em = (t[it] for t in tens)
            xin, eib, ea = _masked_inputs(x, xm, ex, em, ei, mask)
            pred = module(xin, eib, ea).reshape(len(idx), n_services, -1)
            w = (mask.unsqueeze(-1).to(x.dtype) * (1 - xm)).repeat_interleave(2, dim=-1)
            return ((pred - x) ** 2 * w).sum() / w.sum().clamp_min(1.0)

        history: list[tuple[float, float]] = []
        with seeded_training(self.seed, device, threads=cfg.threads):
            module = self._build().to(device)
            opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            val_mask = draw_mask(len(val_idx)) if n_val else None
            stopper = EarlyStopping(cfg.patience, start_epoch=-1)
            epoch = 0
            for epoch in range(1, cfg.epochs + 1):
                module.train()
                perm = train_idx[rng.permutation(len(train_idx))]
                total = 0.0
                for lo in range(0, len(perm), cfg.batch_size):
                    idx = perm[lo : lo + cfg.batch_size]
                    opt.zero_grad()
                    loss = loss_of(module, idx, draw_mask(len(idx)))
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                train_loss = total / max(len(perm), 1)
                if not n_val:
                    history.append((train_loss, math.nan))
                    continue
                module.eval()
                with torch.no_grad():
                    val_loss = float(loss_of(module, val_idx, val_mask))
                history.append((train_loss, val_loss))
                if stopper.step(epoch, val_loss, module):
                    break
            stopper.restore(module)
            module.eval()
            # each service's normal reconstruction error (held-out windows; the training ones without)
            cal = val_idx if n_val else np.sort(train_idx)
            cal = cal[: min(len(cal), 512)]
            with torch.no_grad():
                it = torch.from_numpy(cal).to(device)
                err = _node_errors(module, *(t[it] for t in tens), ei).double().cpu().numpy()
        med = np.median(err, axis=0)
        spread = 1.4826 * np.median(np.abs(err - med), axis=0)
        spread = np.where(spread > 0, spread, err.std(axis=0))
        # a service whose normal error hardly varies must not win on any small change: the spread is
        # floored at the median spread of all services
        spread = np.maximum(spread, np.median(spread))
        self.services_ = tuple(reference.services)
        self.error_median_ = med
        self.error_scale_ = spread + 1e-6 + 1e-3 * np.abs(med)
        self.weights_ = numpy_weights(module)
        self.train_info_ = {
            "epochs_run": epoch,
            "best_epoch": stopper.best_epoch if stopper.improved else epoch,
            "best_val_loss": stopper.best_loss if stopper.improved else None,
            "final_train_loss": history[-1][0] if history else None,
            "n_windows": len(ws.x),
            "n_train": len(train_idx),
            "n_val": int(n_val),
            "n_calibration": len(cal),
            "has_edge_data": _edge_series(reference) is not None,
            "kinds": list(self.kinds_),
            "device": str(device),
            "train_seconds": time.perf_counter() - t0,
            "history": [[float(a), float(v)] for a, v in history],
        }
        self._module = None

    # ------------------------------------------------------------------ rank

    def _cpu_module(self) -> nn.Module:
        if getattr(self, "_module", None) is None:
            self._module = module_from_weights(self._build(), self.weights_)
        return self._module

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._module = None

    def case_windows(self, case: CaseData) -> tuple[WindowSet, np.ndarray]:
        """The case's post-onset windows as autoencoder inputs, and their robust z (T, S, F)."""
        cfg = self.config
        after, base = case.after(), case.baseline()
        if len(after) == 0 or len(base) == 0:
            raise ValueError(
                f"case {case.case_id}: needs post-onset and baseline windows "
                f"(onset={case.onset}, T={len(case.values)}, reference={len(case.reference)})"
            )
        ei, pairs = graph_edges(case)
        e = _edge_series(case)
        esels = self._edge_sels(e)
        if esels is None:
            esels = [(lbl, np.zeros(0, dtype=bool)) for lbl, _ in parse_groups(cfg.edge_groups)]
        ez = _edge_z(case, z_clip=cfg.z_clip, std_fallback=cfg.std_fallback)
        e_after = e_base = rows = None
        if ez is not None:
            values = np.asarray(e.values, dtype=np.float64)
            e_after = values[case.onset :]
            ref = getattr(e, "reference", None)
            # baseline: the edges' fault-free reference windows where there are any, else the pre-onset ones
            e_base = (
                np.asarray(ref, dtype=np.float64)
                if len(case.reference) and ref is not None and len(ref)
                else values[: case.onset]
            )
            rows = (e.pairs, pairs)
        x, xm, ex, em, z = _window_block(
            after,
            base,
            self._sels(case.features, case.feature_kinds),
            e_after,
            e_base,
            esels,
            rows,
            ei[1],
            z_clip=cfg.z_clip,
            std_fallback=cfg.std_fallback,
        )
        return WindowSet(x, xm, ex, em, ei), z

    def _rank(self, case: CaseData) -> RankedCauses:
        ws, z = self.case_windows(case)
        keep = np.isfinite(case.after()).any(axis=(1, 2))
        n_services = len(case.services)
        scores = np.zeros(n_services)
        if keep.any():
            module = self._cpu_module()
            with torch.no_grad(), torch_threads(self.config.threads):
                tens = [
                    torch.from_numpy(np.ascontiguousarray(a[keep], dtype=np.float32))
                    for a in (ws.x, ws.missing, ws.edge_x, ws.edge_missing)
                ]
                err = _node_errors(module, *tens, torch.from_numpy(ws.edge_index), chunk=16).double().numpy()
            pos = {s: i for i, s in enumerate(self.services_)}
            med_all, sc_all = float(np.median(self.error_median_)), float(np.median(self.error_scale_))
            med = np.array([self.error_median_[pos[s]] if s in pos else med_all for s in case.services])
            sc = np.array([self.error_scale_[pos[s]] if s in pos else sc_all for s in case.services])
            ez = (err - med) / sc
            scores = ez.mean(axis=0) if self.config.window_stat == "mean" else ez.max(axis=0)
        # indicators: each service's most deviating feature (largest mean |z| after the onset)
        za = np.where(np.isfinite(z), np.abs(z), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lvl = np.nanmean(za, axis=0)  # (S, F)
        ranked = RankedCauses.from_scores(case.services, scores)
        pos = {s: i for i, s in enumerate(case.services)}
        indicators = []
        for s, sc_ in zip(ranked.services, ranked.scores, strict=True):
            row = lvl[pos[s]]
            if np.isfinite(row).any():
                indicators.append((s, case.features[int(np.nanargmax(row))], float(sc_)))
        return dataclasses.replace(ranked, indicators=tuple(indicators))
