"""Drain (He et al., ICWS 2017): grouping, wildcards, the fixed-depth routing and match-only lookup."""

from __future__ import annotations

from otlp_aiops.features.drain import WILDCARD, Drain


def test_groups_and_wildcards() -> None:
    d = Drain(depth=4, similarity=0.5)
    g1 = d.add("connected to host alpha port <*>")
    g2 = d.add("connected to host beta port <*>")
    assert g1 is g2 and g1.text == "connected to host <*> port <*>" and g1.count == 2
    g3 = d.add("disk full on <*>", count=5)
    assert g3 is not g1 and g3.count == 5 and [g.id for g in d.groups] == [0, 1]


def test_similarity_threshold_splits_groups() -> None:
    d = Drain(depth=3, similarity=0.7)
    a = d.add("job started by alice now")
    b = d.add("job finished by bob later")  # 2 of 5 tokens equal: 0.4 < 0.7
    assert a is not b
    assert d.add("job started by carol now") is a and a.template[3] == WILDCARD


def test_length_and_leading_tokens_route() -> None:
    d = Drain(depth=4, similarity=0.1)
    a = d.add("GET /a done")
    b = d.add("POST /a done")  # a different first token: a different leaf, never merged
    c = d.add("GET /a done now")  # a different length
    assert len({id(a), id(b), id(c)}) == 3


def test_match_does_not_change_the_tree() -> None:
    d = Drain(depth=4, similarity=0.5).fit([("user <*> logged in", 3), ("user <*> logged out", 1)])
    assert len(d.groups) == 1 and d.groups[0].text == "user <*> logged <*>" and d.groups[0].count == 4
    assert d.match("user <*> logged in").id == 0
    assert d.match("kernel panic") is None and d.match("user <*> was deleted now") is None
    assert len(d.groups) == 1 and d.groups[0].count == 4


def test_max_children_sends_new_tokens_to_the_wildcard_branch() -> None:
    d = Drain(depth=3, similarity=0.5, max_children=2)
    d.add("alpha x")
    d.add("beta x")
    g = d.add("gamma x")  # third distinct first token: the wildcard child
    assert d.match("delta x") is g
    assert set(d.root.children["2"].children) == {"alpha", WILDCARD}
