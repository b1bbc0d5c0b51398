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

torch and torch_geometric are imported at the top: this module is loaded only through the registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    # torch_geometric scripts a few helpers with torch.jit.script at import, which torch deprecates
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.script.*")
    import torch_geometric  # noqa: F401 - imported under the filter once, so later imports are silent
    from torch_geometric.nn import GATConv, SAGEConv
    from torch_geometric.utils import to_dense_batch

from otlp_aiops.config import ConfigError
from otlp_aiops.features.data import FEATURE_KINDS, CaseData, ReferenceData
from otlp_aiops.rca.base import RankedCauses, RankerConfig, RootCauseRanker
from otlp_aiops.rca.node_features import DEFAULT_KINDS, MODES, node_features

log = logging.getLogger(__name__)

CONVS = ("sage", "gat")
DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class NodeRankerConfig(RankerConfig):
    """What the GNN and the MLP share: node features, network width, optimiser, early stopping."""

    feature_mode: str = "kinds"  # kinds: dataset-agnostic (transferable) | all: every feature column
    kinds: tuple[str, ...] = DEFAULT_KINDS  # feature kinds used by feature_mode=kinds
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

    def __post_init__(self) -> None:
        if self.feature_mode not in MODES:
            raise ConfigError(f"feature_mode {self.feature_mode!r} is not one of {', '.join(MODES)}")
        bad = [k for k in self.kinds if k not in FEATURE_KINDS]
        if bad or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ConfigError(f"kinds {list(self.kinds)} must be distinct values of {', '.join(FEATURE_KINDS)}")
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


@dataclass(frozen=True)
class GNNConfig(NodeRankerConfig):
    conv: str = "sage"  # sage (GraphSAGE, mean aggregation) | gat (graph attention)
    heads: int = 2  # attention heads (gat only; averaged)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conv not in CONVS:
            raise ConfigError(f"conv {self.conv!r} is not one of {', '.join(CONVS)}")
        if self.heads < 1:
            raise ConfigError(f"heads must be at least 1, got {self.heads}")


@dataclass(frozen=True)
class MLPConfig(NodeRankerConfig):
    pass


# --------------------------------------------------------------------------------------- modules


class GraphRootCauseNet(nn.Module):
    """Encoder → ``layers`` bidirectional message-passing blocks (residual) → one logit per node.

    Each block sums a conv over the caller → callee edges, a conv over the reversed edges and a
    linear map of the node itself, so a node hears from its callers and its callees separately."""

    def __init__(self, in_dim: int, hidden: int = 32, layers: int = 2, conv: str = "sage",
                 dropout: float = 0.1, heads: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Linear(in_dim, hidden)

        def make_conv() -> nn.Module:
            if conv == "sage":
                return SAGEConv(hidden, hidden, aggr="mean", root_weight=False)
            return GATConv(hidden, hidden, heads=heads, concat=False, add_self_loops=False)

        self.to_callee = nn.ModuleList(make_conv() for _ in range(layers))  # messages along caller → callee
        self.to_caller = nn.ModuleList(make_conv() for _ in range(layers))  # along callee → caller
        self.self_lin = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        reverse = edge_index.flip(0)
        h = torch.relu(self.encoder(x))
        for down, up, lin in zip(self.to_callee, self.to_caller, self.self_lin, strict=True):
            h = h + self.dropout(torch.relu(lin(h) + down(h, edge_index) + up(h, reverse)))
        return self.head(h).squeeze(-1)


class NodeMLP(nn.Module):
    """The ablation: the same encoder, residual blocks and head, each node on its own (no edges)."""

    def __init__(self, in_dim: int, hidden: int = 32, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
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


def _collate(graphs: Sequence[CaseGraph], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Stack cases into one disjoint graph: x, edge_index (offset per case), batch vector, targets."""
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
    return x, ei, b, y


def listwise_loss(logits: torch.Tensor, batch: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over cases of −log softmax(logits of the case's nodes)[root cause]."""
    dense, mask = to_dense_batch(logits.unsqueeze(-1), batch)
    dense = dense.squeeze(-1).masked_fill(~mask, float("-inf"))
    return nn.functional.cross_entropy(dense, targets)


def train_node_ranker(module: nn.Module, graphs: Sequence[CaseGraph], cfg: NodeRankerConfig, *, seed: int,
                      device: torch.device) -> dict[str, Any]:
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
    best = (math.inf, -1, None)  # validation loss, epoch, weights
    history: list[tuple[float, float]] = []
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        module.train()
        perm = rng.permutation(len(train))
        total = 0.0
        for lo in range(0, len(train), bs):
            chunk = [train[i] for i in perm[lo : lo + bs]]
            x, ei, b, y = _collate(chunk, device)
            opt.zero_grad()
            loss = listwise_loss(module(x, ei), b, y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(chunk)
        train_loss = total / len(train)
        if val_batch is None:
            history.append((train_loss, math.nan))
            continue
        module.eval()
        with torch.no_grad():
            x, ei, b, y = val_batch
            val_loss = float(listwise_loss(module(x, ei), b, y))
        history.append((train_loss, val_loss))
        if val_loss < best[0]:
            best = (val_loss, epoch, {k: v.detach().clone() for k, v in module.state_dict().items()})
        elif epoch - best[1] >= cfg.patience:
            break
    if best[2] is not None:
        module.load_state_dict(best[2])
    module.eval()
    return {"epochs_run": epoch, "best_epoch": best[1] if best[2] is not None else epoch,
            "best_val_loss": best[0] if best[2] is not None else None,
            "final_train_loss": history[-1][0] if history else None,
            "n_train": len(train), "n_val": len(val), "device": str(device),
            "train_seconds": time.perf_counter() - t0,
            "history": [[float(a), float(v)] for a, v in history]}


# --------------------------------------------------------------------------------------- rankers


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave as is), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != before:
            torch.set_num_threads(before)


def _compress(x: np.ndarray) -> np.ndarray:
    """sign·log1p|x|: unit-free z statistics on a bounded scale, the same for every dataset."""
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


class _NodeRanker(RootCauseRanker):
    """The RCA contract around a node-scoring module; subclasses say which module."""

    Config: ClassVar[type] = NodeRankerConfig
    supervised: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True

    def _build(self, in_dim: int) -> nn.Module:
        raise NotImplementedError

    def _case_graph(self, case: CaseData, target: int = -1) -> tuple[CaseGraph, Any]:
        cfg = self.config
        nf = node_features(case, cfg.feature_mode, kinds=cfg.kinds, z_clip=cfg.z_clip,
                           std_fallback=cfg.std_fallback)
        x = nf.x
        trained = getattr(self, "feature_columns_", None)
        if cfg.feature_mode == "all" and trained is not None and nf.columns != trained:
            pos = {c: i for i, c in enumerate(nf.columns)}
            missing = [c.rsplit(".", 1)[0] for c in trained if c not in pos]
            if missing:
                raise ValueError(
                    f"case {case.case_id}: feature_mode=all was trained on other features; missing "
                    f"{sorted(set(missing))[:5]} (use feature_mode=kinds to apply a model across datasets)")
            x = x[:, [pos[c] for c in trained]]
        ei = case.graph.edge_index()
        if case.graph.services != case.services:  # re-map the graph's node order onto the case's
            pos = {s: i for i, s in enumerate(case.services)}
            keep = [(a, b) for a, b in case.graph.edges if a in pos and b in pos]
            ei = np.array([[pos[a] for a, _ in keep], [pos[b] for _, b in keep]], dtype=np.int64).reshape(2, -1)
        return CaseGraph(case.case_id, _compress(x), ei, target), nf

    def _device(self) -> torch.device:
        dev = torch.device(self.config.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{self.name}: device={self.config.device!r} but torch sees no CUDA device")
        return dev

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
                raise ValueError(f"case {case.case_id}: node feature columns differ from the first training "
                                 "case's (feature_mode=all needs one dataset's features)")
            graphs.append(g)
        if skipped:
            log.warning("%s: %d of %d training cases skipped: root cause not among their services (%s)",
                        self.name, len(skipped), len(train_cases), ", ".join(skipped[:5]))
        if not graphs:
            raise ValueError(f"{self.name}: none of the {len(train_cases)} training cases has its root cause "
                             "among its services")
        self.feature_columns_ = columns
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), _torch_threads(self.config.threads):
            torch.manual_seed(self.seed)
            module = self._build(graphs[0].x.shape[1])
            info = train_node_ranker(module, graphs, self.config, seed=self.seed, device=device)
        info.update(n_cases=len(train_cases), skipped_cases=len(skipped), skipped_case_ids=skipped)
        # weights as numpy: a model trained on a GPU saves, loads and ranks on a CPU
        self.weights_ = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        self.train_info_ = info
        self._module = None

    def _cpu_module(self) -> nn.Module:
        if getattr(self, "_module", None) is None:
            module = self._build(len(self.feature_columns_))
            module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights_.items()})
            module.eval()
            self._module = module
        return self._module

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._module = None

    def _rank(self, case: CaseData) -> RankedCauses:
        g, nf = self._case_graph(case)
        module = self._cpu_module()
        with torch.no_grad(), _torch_threads(self.config.threads):
            logits = module(torch.from_numpy(g.x), torch.from_numpy(g.edge_index))
            scores = torch.log_softmax(logits.double(), dim=0).numpy()
        ranked = RankedCauses.from_scores(case.services, scores)
        pos = {s: i for i, s in enumerate(case.services)}
        indicators = tuple((s, nf.top_feature[pos[s]], float(sc)) for s, sc in zip(ranked.services, ranked.scores,
                                                                                      strict=True)
                           if nf.top_feature[pos[s]] is not None)
        return dataclasses.replace(ranked, indicators=indicators)


class GNNRanker(_NodeRanker):
    """Root-cause ranking with a bidirectional GraphSAGE / GAT network trained on labelled incidents."""

    name: ClassVar[str] = "gnn"
    Config: ClassVar[type] = GNNConfig

    def _build(self, in_dim: int) -> nn.Module:
        c = self.config
        return GraphRootCauseNet(in_dim, c.hidden, c.layers, c.conv, c.dropout, c.heads)


class MLPRanker(_NodeRanker):
    """The GNN's ablation: the same features, loss and training, one MLP per node, no graph."""

    name: ClassVar[str] = "mlp"
    Config: ClassVar[type] = MLPConfig

    def _build(self, in_dim: int) -> nn.Module:
        c = self.config
        return NodeMLP(in_dim, c.hidden, c.layers, c.dropout)
