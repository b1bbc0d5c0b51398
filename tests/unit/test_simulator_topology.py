"""The simulated systems' shapes: Online Boutique's real call graph, Train Ticket's size, random DAGs,
and the call-tree expansion of journeys."""

from __future__ import annotations

import numpy as np
import pytest

from otlp_aiops.datasets.simulator.calltree import expand
from otlp_aiops.datasets.simulator.topology import (
    Topology,
    iter_calls,
    online_boutique,
    random_dag,
    train_ticket,
)

# Online Boutique's service graph, from the demo's source (who dials whom)
BOUTIQUE_EDGES = {
    ("frontend", "adservice"),
    ("frontend", "cartservice"),
    ("frontend", "checkoutservice"),
    ("frontend", "currencyservice"),
    ("frontend", "productcatalogservice"),
    ("frontend", "recommendationservice"),
    ("frontend", "shippingservice"),
    ("checkoutservice", "cartservice"),
    ("checkoutservice", "productcatalogservice"),
    ("checkoutservice", "currencyservice"),
    ("checkoutservice", "shippingservice"),
    ("checkoutservice", "paymentservice"),
    ("checkoutservice", "emailservice"),
    ("recommendationservice", "productcatalogservice"),
    ("cartservice", "redis-cart"),
}


def _edges(topo: Topology) -> set[tuple[str, str]]:
    return {(e["caller"], e["callee"]) for e in topo.edges()}


def _reachable(topo: Topology) -> set[str]:
    seen: set[str] = set()
    todo = [j.entry for j in topo.journeys]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(c.op for c in iter_calls(topo.op(key).steps))
    return {topo.op(k).service for k in seen}


def _is_dag(topo: Topology) -> bool:
    graph: dict[str, set[str]] = {}
    for a, b in _edges(topo):
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        if state.get(n) == 1:
            return False
        if state.get(n) == 2:
            return True
        state[n] = 1
        ok = all(visit(m) for m in graph.get(n, ()))
        state[n] = 2
        return ok

    return all(visit(n) for n in list(graph))


def test_online_boutique_has_the_demo_services_and_exact_call_graph() -> None:
    topo = online_boutique()
    names = {s.name for s in topo.services}
    assert names == {
        "frontend",
        "cartservice",
        "productcatalogservice",
        "currencyservice",
        "paymentservice",
        "shippingservice",
        "emailservice",
        "checkoutservice",
        "recommendationservice",
        "adservice",
        "redis-cart",
    }
    assert "loadgenerator" in topo.traffic_source  # the 11th service: the traffic source, not instrumented
    assert _edges(topo) == BOUTIQUE_EDGES
    assert [s.name for s in topo.services if not s.instrumented] == ["redis-cart"]
    runtimes = {s.name: s.runtime for s in topo.services}
    assert (
        runtimes["cartservice"],
        runtimes["adservice"],
        runtimes["emailservice"],
        runtimes["currencyservice"],
    ) == ("dotnet", "java", "python", "nodejs")
    assert topo.service("cartservice").rpc_service == "hipstershop.CartService"
    # PlaceOrder's calls in the demo's order: cart, per item product + currency, shipping quote, currency,
    # payment, shipping, empty cart, e-mail
    place = [
        topo.op(c.op).service + ":" + topo.op(c.op).name
        for c in iter_calls(topo.op("checkoutservice:PlaceOrder").steps)
    ]
    assert place == [
        "cartservice:GetCart",
        "productcatalogservice:GetProduct",
        "currencyservice:Convert",
        "shippingservice:GetQuote",
        "currencyservice:Convert",
        "paymentservice:Charge",
        "shippingservice:ShipOrder",
        "cartservice:EmptyCart",
        "emailservice:SendOrderConfirmation",
    ]
    weights = {j.name: j.weight for j in topo.journeys}
    assert weights == {
        "index": 1,
        "setCurrency": 2,
        "browseProduct": 10,
        "addToCart": 2,
        "viewCart": 3,
        "checkout": 1,
    }
    assert topo.callers_of("productcatalogservice") == {
        "frontend",
        "checkoutservice",
        "recommendationservice",
    }
    assert topo.callees_of("checkoutservice") == {
        "cartservice",
        "productcatalogservice",
        "currencyservice",
        "shippingservice",
        "paymentservice",
        "emailservice",
        "redis-cart",
    }


def test_train_ticket_is_large_connected_and_acyclic() -> None:
    topo = train_ticket()
    assert len(topo.services) >= 41
    assert sum(s.instrumented for s in topo.services) >= 40
    assert _reachable(topo) == {s.name for s in topo.services}
    assert _is_dag(topo)
    assert topo.entry_service == "ts-gateway-service"
    assert {"ts-travel-service", "ts-basic-service"} <= topo.callers_of("ts-station-service")


@pytest.mark.parametrize("n", [3, 10, 57, 300])
def test_random_dag_has_n_reachable_services(n: int) -> None:
    topo = random_dag(n, np.random.default_rng(n))
    assert len(topo.services) == n
    assert _reachable(topo) == {s.name for s in topo.services}
    assert _is_dag(topo)
    again = random_dag(n, np.random.default_rng(n))
    assert _edges(again) == _edges(topo) and again.operations == topo.operations


def test_home_page_call_tree_expands_loops_and_retries() -> None:
    topo = online_boutique()
    index = next(j for j in topo.journeys if j.name == "index")
    tree = expand(topo, index)
    # entry + currencies (2 attempts) + products (2) + cart (2 attempts x (GetCart + redis HGET))
    # + 9 conversions x 2 attempts + ads (2)
    assert tree.n_nodes == 1 + 2 + 2 + 4 + 18 + 2
    assert (tree.parent[1:] < np.arange(1, tree.n_nodes)).all()  # children come after their parent
    calls = tree.expected_calls(len(topo.operations))
    assert calls[topo.op_index["currencyservice:Convert"]] == 9
    assert calls[topo.op_index["redis-cart:HGET"]] == 1
    assert calls[topo.op_index["frontend:GET /"]] == 1


def test_loop_over_a_journey_variable_counts_its_mean() -> None:
    topo = online_boutique()
    checkout = next(j for j in topo.journeys if j.name == "checkout")
    tree = expand(topo, checkout)
    calls = tree.expected_calls(len(topo.operations))
    # items uniform on 1..4 (mean 2.5): one GetProduct and one Convert per item, plus the shipping conversion
    assert calls[topo.op_index["productcatalogservice:GetProduct"]] == pytest.approx(2.5)
    assert calls[topo.op_index["currencyservice:Convert"]] == pytest.approx(3.5)
    assert calls[topo.op_index["productcatalogservice:ListProducts"]] == pytest.approx(1.0)
