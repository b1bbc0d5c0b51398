"""Log template mining with Drain.

Implements the algorithm of P. He, J. Zhu, Z. Zheng and M. R. Lyu, "Drain: An Online Log Parsing
Approach with Fixed Depth Tree", IEEE ICWS 2017: a message (already split into tokens, with
variable-looking tokens masked by the caller) is routed through a tree of fixed depth — first by its
token count, then by its leading ``depth - 2`` tokens (a token with a digit, or any token once a node
has ``max_children`` children, goes to the wildcard branch) — to a leaf holding log groups; it joins
the group whose template is most similar (simSeq = share of positions with equal tokens, wildcards not
counted) if the similarity reaches ``similarity``, and the positions that differ become wildcards;
otherwise it starts a new group.

``fit`` builds groups from fault-free messages; ``match`` only looks them up (a message that finds no
group is "unseen"), so the templates are fixed by the fault-free data. Not the drain3 package
(its cachetools pin conflicts with mlflow; see STACK.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

WILDCARD = "<*>"


def _has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


@dataclass
class LogGroup:
    template: list[str]
    count: int = 0
    id: int = -1

    @property
    def text(self) -> str:
        return " ".join(self.template)


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    groups: list[LogGroup] = field(default_factory=list)


class Drain:
    def __init__(self, depth: int = 4, similarity: float = 0.4, max_children: int = 100) -> None:
        if depth < 3:
            raise ValueError("Drain depth must be >= 3 (root, length layer, leaf)")
        self.depth = depth
        self.similarity = similarity
        self.max_children = max_children
        self.root = _Node()
        self.groups: list[LogGroup] = []

    # --- tree search -------------------------------------------------------------------------
    def _leaf(self, tokens: list[str], create: bool) -> _Node | None:
        node = self.root.children.get(str(len(tokens)))
        if node is None:
            if not create:
                return None
            node = self.root.children.setdefault(str(len(tokens)), _Node())
        for token in tokens[: self.depth - 2]:
            key = WILDCARD if _has_digit(token) else token
            if key in node.children:
                node = node.children[key]
            elif not create:
                if WILDCARD not in node.children:
                    return None
                node = node.children[WILDCARD]
            elif key != WILDCARD and len(node.children) + (WILDCARD not in node.children) < self.max_children:
                # keep room for the wildcard child: at most max_children children in all
                node = node.children.setdefault(key, _Node())
            else:
                node = node.children.setdefault(WILDCARD, _Node())
        return node

    @staticmethod
    def _sim(template: list[str], tokens: list[str]) -> tuple[float, int]:
        equal = params = 0
        for a, b in zip(template, tokens, strict=True):
            if a == WILDCARD:
                params += 1
            elif a == b:
                equal += 1
        return equal / len(tokens), params

    def _best(self, leaf: _Node, tokens: list[str]) -> LogGroup | None:
        best, best_key = None, (-1.0, -1)
        for g in leaf.groups:
            sim, params = self._sim(g.template, tokens)
            # ties go to the template with more wildcards (the paper's rule)
            if (sim, params) > best_key:
                best, best_key = g, (sim, params)
        if best is not None and best_key[0] >= self.similarity:
            return best
        return None

    # --- public API --------------------------------------------------------------------------
    def add(self, message: str, count: int = 1) -> LogGroup:
        """Route one message (``count`` copies) into the tree, updating or creating a group."""
        tokens = message.split()
        if not tokens:
            tokens = [""]
        leaf = self._leaf(tokens, create=True)
        assert leaf is not None
        group = self._best(leaf, tokens)
        if group is None:
            group = LogGroup(list(tokens), 0, len(self.groups))
            leaf.groups.append(group)
            self.groups.append(group)
        else:
            group.template = [a if a == b else WILDCARD for a, b in zip(group.template, tokens, strict=True)]
        group.count += count
        return group

    def fit(self, messages: Iterable[tuple[str, int]]) -> Drain:
        for message, count in messages:
            self.add(message, count)
        return self

    def match(self, message: str) -> LogGroup | None:
        """The group a message belongs to without changing the tree, or None (an unseen template)."""
        tokens = message.split() or [""]
        leaf = self._leaf(tokens, create=False)
        if leaf is None:
            return None
        return self._best(leaf, tokens)
