"""The simulated systems: services, their operations, each operation's calls, and the user journeys.

Three systems: ``online-boutique`` (Google's microservices demo: the real services, languages, gRPC
methods and call structure), ``train-ticket`` (a 46-service system in the shape of the FudanSE Train
Ticket benchmark, with one shared MySQL), and ``random:N`` (a layered random DAG of N services).
Latencies, CPU costs, timeouts and retry policies are modelled values, not measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

DATASTORE_RUNTIMES = frozenset(["redis", "mysql"])


@dataclass(frozen=True)
class Call:
    """One call an operation makes: to ``op`` (``"service:operation"``), with the caller's policy."""

    op: str
    optional: bool = False  # a failure is tolerated: the caller logs a warning and carries on
    attempts: int = 1  # 1 + retries, retried on UNAVAILABLE / DEADLINE_EXCEEDED only
    timeout_ms: float = 1000.0


@dataclass(frozen=True)
class Par:
    """Calls made concurrently; the step lasts as long as the slowest."""

    calls: tuple[Call, ...]

    def __init__(self, *calls: Call) -> None:
        object.__setattr__(self, "calls", tuple(calls))


@dataclass(frozen=True)
class Repeat:
    """A sequential loop: ``body`` runs ``count`` times (an int, or a journey variable's value)."""

    count: int | str
    body: tuple[Call | Par, ...]

    def __init__(self, count: int | str, *body: Call | Par) -> None:
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "body", tuple(body))


Step = Call | Par | Repeat


@dataclass(frozen=True)
class Operation:
    service: str
    name: str  # gRPC method, "METHOD /route", or a datastore command
    latency_ms: float  # median own (non-waiting) time, unloaded
    cpu_ms: float  # CPU time per call
    io_ms: float = 0.02  # part of the own time spent on disk I/O (log writes, persistence)
    sigma: float = 0.45  # log-normal shape of the own time
    error_rate: float = 2e-4  # background probability of an unhandled exception
    steps: tuple[Step, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.service}:{self.name}"

    @property
    def http_method(self) -> str | None:
        head = self.name.split(" ", 1)[0]
        return head if head in ("GET", "POST", "PUT", "DELETE", "PATCH") else None

    @property
    def route(self) -> str | None:
        return self.name.split(" ", 1)[1] if self.http_method else None


@dataclass(frozen=True)
class Service:
    name: str
    protocol: str  # http | grpc | redis | mysql
    runtime: str  # go | java | nodejs | python | dotnet | redis | mysql
    replicas: int = 1
    port: int = 8080
    rpc_service: str | None = None  # fully qualified gRPC service
    target_util: float = 0.3  # CPU utilisation of its limit at the mean request rate
    memory_mb: float = 120.0  # working set, warm, without leaks
    memory_limit_mb: float = 256.0
    version: str = "1.0.0"

    @property
    def instrumented(self) -> bool:
        """Whether it runs an OpenTelemetry SDK (datastores are seen only through client spans)."""
        return self.runtime not in DATASTORE_RUNTIMES


@dataclass(frozen=True)
class Journey:
    """A kind of user request entering at the frontend: one trace each."""

    name: str
    entry: str  # operation key at the entry service
    weight: float
    variables: tuple[tuple[str, int, int], ...] = ()  # (name, min, max), uniform integers


@dataclass
class Topology:
    system: str
    namespace: str
    services: tuple[Service, ...]
    operations: tuple[Operation, ...]
    journeys: tuple[Journey, ...]
    traffic_source: str
    reference: str
    service_index: dict[str, int] = field(init=False)
    op_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.service_index = {s.name: i for i, s in enumerate(self.services)}
        self.op_index = {o.key: i for i, o in enumerate(self.operations)}
        if len(self.service_index) != len(self.services):
            raise ValueError(f"{self.system}: duplicate service names")
        if len(self.op_index) != len(self.operations):
            raise ValueError(f"{self.system}: duplicate operations")
        for o in self.operations:
            if o.service not in self.service_index:
                raise ValueError(f"{self.system}: operation {o.key} of unknown service")
            for c in iter_calls(o.steps):
                if c.op not in self.op_index:
                    raise ValueError(f"{self.system}: {o.key} calls unknown operation {c.op}")
        for j in self.journeys:
            if j.entry not in self.op_index:
                raise ValueError(f"{self.system}: journey {j.name} enters at unknown operation {j.entry}")

    def service(self, name: str) -> Service:
        return self.services[self.service_index[name]]

    def op(self, key: str) -> Operation:
        return self.operations[self.op_index[key]]

    @property
    def entry_service(self) -> str:
        return self.op(self.journeys[0].entry).service

    def edges(self) -> list[dict]:
        """Caller service -> callee service with the callee operations used, in first-seen order."""
        seen: dict[tuple[str, str], list[str]] = {}
        for o in self.operations:
            for c in iter_calls(o.steps):
                callee = self.op(c.op)
                ops = seen.setdefault((o.service, callee.service), [])
                if callee.name not in ops:
                    ops.append(callee.name)
        return [{"caller": a, "callee": b, "operations": ops} for (a, b), ops in seen.items()]

    def callers_of(self, service: str) -> set[str]:
        """Every service that reaches ``service`` through calls (its transitive callers)."""
        return _reachable(self.edges(), service, "callee", "caller")

    def callees_of(self, service: str) -> set[str]:
        """Every service ``service`` reaches through calls (its transitive dependencies)."""
        return _reachable(self.edges(), service, "caller", "callee")


def _reachable(edges: list[dict], start: str, src: str, dst: str) -> set[str]:
    """Every node reachable from ``start`` following edges from their ``src`` end to their ``dst`` end."""
    direct: dict[str, set[str]] = {}
    for e in edges:
        direct.setdefault(e[src], set()).add(e[dst])
    out: set[str] = set()
    todo = [start]
    while todo:
        for c in direct.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def iter_calls(steps: Iterable[Step]) -> Iterable[Call]:
    for s in steps:
        if isinstance(s, Call):
            yield s
        elif isinstance(s, Par):
            yield from s.calls
        else:
            yield from iter_calls(s.body)


# ----------------------------------------------------------------------------------------------
# Online Boutique (github.com/GoogleCloudPlatform/microservices-demo): 11 services + redis-cart.
# Services, languages, ports, gRPC methods and who-calls-whom follow the demo's source; the load
# generator's task weights (index 1, setCurrency 2, browseProduct 10, addToCart 2, viewCart 3,
# checkout 1) give the journey mix. Replicas, latencies, timeouts and retries are modelled.
# ----------------------------------------------------------------------------------------------


def online_boutique() -> Topology:
    hs = "hipstershop."
    services = (
        Service(
            "frontend",
            "http",
            "go",
            replicas=2,
            port=8080,
            target_util=0.35,
            memory_mb=60,
            memory_limit_mb=128,
        ),
        Service(
            "cartservice",
            "grpc",
            "dotnet",
            port=7070,
            rpc_service=hs + "CartService",
            target_util=0.3,
            memory_mb=110,
            memory_limit_mb=256,
        ),
        Service(
            "productcatalogservice",
            "grpc",
            "go",
            replicas=2,
            port=3550,
            rpc_service=hs + "ProductCatalogService",
            target_util=0.25,
            memory_mb=40,
            memory_limit_mb=128,
        ),
        Service(
            "currencyservice",
            "grpc",
            "nodejs",
            replicas=2,
            port=7000,
            rpc_service=hs + "CurrencyService",
            target_util=0.35,
            memory_mb=90,
            memory_limit_mb=128,
        ),
        Service(
            "paymentservice",
            "grpc",
            "nodejs",
            port=50051,
            rpc_service=hs + "PaymentService",
            target_util=0.2,
            memory_mb=80,
            memory_limit_mb=128,
        ),
        Service(
            "shippingservice",
            "grpc",
            "go",
            port=50051,
            rpc_service=hs + "ShippingService",
            target_util=0.2,
            memory_mb=30,
            memory_limit_mb=128,
        ),
        Service(
            "emailservice",
            "grpc",
            "python",
            port=8080,
            rpc_service=hs + "EmailService",
            target_util=0.25,
            memory_mb=70,
            memory_limit_mb=128,
        ),
        Service(
            "checkoutservice",
            "grpc",
            "go",
            port=5050,
            rpc_service=hs + "CheckoutService",
            target_util=0.2,
            memory_mb=35,
            memory_limit_mb=128,
        ),
        Service(
            "recommendationservice",
            "grpc",
            "python",
            port=8080,
            rpc_service=hs + "RecommendationService",
            target_util=0.35,
            memory_mb=150,
            memory_limit_mb=450,
        ),
        Service(
            "adservice",
            "grpc",
            "java",
            port=9555,
            rpc_service=hs + "AdService",
            target_util=0.3,
            memory_mb=190,
            memory_limit_mb=300,
        ),
        Service(
            "redis-cart",
            "redis",
            "redis",
            port=6379,
            target_util=0.15,
            memory_mb=25,
            memory_limit_mb=256,
            version="7.2",
        ),
    )
    ops = [
        # frontend: HTTP handlers (Go)
        Operation(
            "frontend",
            "GET /",
            3.0,
            2.2,
            steps=(
                Call("currencyservice:GetSupportedCurrencies", attempts=2),
                Call("productcatalogservice:ListProducts", attempts=2),
                Call("cartservice:GetCart", attempts=2),
                Repeat(9, Call("currencyservice:Convert", attempts=2)),
                Call("adservice:GetAds", optional=True, attempts=2, timeout_ms=500),
            ),
        ),
        Operation("frontend", "POST /setCurrency", 0.4, 0.3),
        Operation(
            "frontend",
            "GET /product/{id}",
            2.5,
            1.8,
            steps=(
                Call("productcatalogservice:GetProduct", attempts=2),
                Call("currencyservice:GetSupportedCurrencies", attempts=2),
                Call("cartservice:GetCart", attempts=2),
                Call("currencyservice:Convert", attempts=2),
                Call("recommendationservice:ListRecommendations", attempts=2),
                Call("adservice:GetAds", optional=True, attempts=2, timeout_ms=500),
            ),
        ),
        Operation(
            "frontend",
            "POST /cart",
            1.0,
            0.8,
            steps=(
                Call("productcatalogservice:GetProduct", attempts=2),
                Call("cartservice:AddItem"),
            ),
        ),
        Operation(
            "frontend",
            "GET /cart",
            2.5,
            1.8,
            steps=(
                Call("currencyservice:GetSupportedCurrencies", attempts=2),
                Call("cartservice:GetCart", attempts=2),
                Call("recommendationservice:ListRecommendations", attempts=2),
                Call("shippingservice:GetQuote", attempts=2),
                Repeat(
                    "items",
                    Call("productcatalogservice:GetProduct", attempts=2),
                    Call("currencyservice:Convert", attempts=2),
                ),
            ),
        ),
        Operation(
            "frontend",
            "POST /cart/checkout",
            2.0,
            1.5,
            steps=(
                Call("checkoutservice:PlaceOrder", timeout_ms=5000),
                Call("recommendationservice:ListRecommendations", attempts=2),
                Call("currencyservice:GetSupportedCurrencies", attempts=2),
            ),
        ),
        # backends (gRPC)
        Operation("currencyservice", "GetSupportedCurrencies", 0.4, 0.3),
        Operation("currencyservice", "Convert", 0.5, 0.4),
        Operation("productcatalogservice", "ListProducts", 0.8, 0.6),
        Operation("productcatalogservice", "GetProduct", 0.3, 0.25),
        Operation("cartservice", "GetCart", 0.8, 0.6, steps=(Call("redis-cart:HGET", timeout_ms=300),)),
        Operation(
            "cartservice",
            "AddItem",
            1.0,
            0.7,
            steps=(
                Call("redis-cart:HGET", timeout_ms=300),
                Call("redis-cart:HSET", timeout_ms=300),
                Call("redis-cart:EXPIRE", timeout_ms=300),
            ),
        ),
        Operation(
            "cartservice",
            "EmptyCart",
            0.6,
            0.45,
            steps=(
                Call("redis-cart:HSET", timeout_ms=300),
                Call("redis-cart:EXPIRE", timeout_ms=300),
            ),
        ),
        Operation("redis-cart", "HGET", 0.08, 0.05, io_ms=0.0, sigma=0.3),
        Operation("redis-cart", "HSET", 0.1, 0.06, io_ms=0.15, sigma=0.3),
        Operation("redis-cart", "EXPIRE", 0.05, 0.03, io_ms=0.05, sigma=0.3),
        Operation(
            "recommendationservice",
            "ListRecommendations",
            3.0,
            2.5,
            steps=(Call("productcatalogservice:ListProducts", attempts=2, timeout_ms=500),),
        ),
        Operation("adservice", "GetAds", 1.5, 1.2),
        Operation("shippingservice", "GetQuote", 0.5, 0.4),
        Operation("shippingservice", "ShipOrder", 0.8, 0.6),
        Operation("paymentservice", "Charge", 2.0, 1.5),
        Operation("emailservice", "SendOrderConfirmation", 12.0, 9.0, io_ms=0.3),
        Operation(
            "checkoutservice",
            "PlaceOrder",
            2.0,
            1.5,
            steps=(
                Call("cartservice:GetCart", attempts=2, timeout_ms=500),
                Repeat(
                    "items",
                    Call("productcatalogservice:GetProduct", attempts=2, timeout_ms=500),
                    Call("currencyservice:Convert", attempts=2, timeout_ms=500),
                ),
                Call("shippingservice:GetQuote", attempts=2, timeout_ms=500),
                Call("currencyservice:Convert", attempts=2, timeout_ms=500),
                Call("paymentservice:Charge"),
                Call("shippingservice:ShipOrder"),
                Call("cartservice:EmptyCart", optional=True, attempts=2, timeout_ms=500),
                Call("emailservice:SendOrderConfirmation", optional=True),
            ),
        ),
    ]
    items = (("items", 1, 4),)
    journeys = (
        Journey("index", "frontend:GET /", 1.0),
        Journey("setCurrency", "frontend:POST /setCurrency", 2.0),
        Journey("browseProduct", "frontend:GET /product/{id}", 10.0),
        Journey("addToCart", "frontend:POST /cart", 2.0),
        Journey("viewCart", "frontend:GET /cart", 3.0, items),
        Journey("checkout", "frontend:POST /cart/checkout", 1.0, items),
    )
    return Topology(
        "online-boutique",
        "online-boutique",
        services,
        tuple(ops),
        journeys,
        traffic_source="loadgenerator (Locust; not instrumented, sends HTTP requests to frontend)",
        reference="GoogleCloudPlatform/microservices-demo (Online Boutique), "
        "https://github.com/GoogleCloudPlatform/microservices-demo",
    )


# ----------------------------------------------------------------------------------------------
# Train Ticket (FudanSELab/train-ticket; Zhou et al., "Fault Analysis and Debugging of Microservice
# Systems", IEEE TSE 2018): service names and the main request flows (search, book, pay, cancel,
# rebook, collect, food, consign, admin views) in the shape of the benchmark, reduced to synchronous
# HTTP calls and one shared MySQL. Not a faithful copy of every endpoint.
# ----------------------------------------------------------------------------------------------


def train_ticket() -> Topology:
    java = ("java",)
    runtimes = {
        "ts-news-service": "go",
        "ts-ticket-office-service": "nodejs",
        "ts-voucher-service": "python",
        "ts-avatar-service": "python",
    }
    names = [
        "ts-gateway-service",
        "ts-auth-service",
        "ts-verification-code-service",
        "ts-user-service",
        "ts-contacts-service",
        "ts-station-service",
        "ts-train-service",
        "ts-route-service",
        "ts-price-service",
        "ts-config-service",
        "ts-order-service",
        "ts-order-other-service",
        "ts-seat-service",
        "ts-basic-service",
        "ts-ticketinfo-service",
        "ts-travel-service",
        "ts-travel2-service",
        "ts-security-service",
        "ts-assurance-service",
        "ts-food-service",
        "ts-station-food-service",
        "ts-train-food-service",
        "ts-delivery-service",
        "ts-food-delivery-service",
        "ts-consign-service",
        "ts-consign-price-service",
        "ts-preserve-service",
        "ts-preserve-other-service",
        "ts-notification-service",
        "ts-inside-payment-service",
        "ts-payment-service",
        "ts-cancel-service",
        "ts-rebook-service",
        "ts-execute-service",
        "ts-route-plan-service",
        "ts-travel-plan-service",
        "ts-wait-order-service",
        "ts-avatar-service",
        "ts-news-service",
        "ts-ticket-office-service",
        "ts-voucher-service",
        "ts-admin-basic-info-service",
        "ts-admin-order-service",
        "ts-admin-route-service",
        "ts-admin-travel-service",
        "ts-admin-user-service",
    ]
    busy = {
        "ts-gateway-service": 2,
        "ts-travel-service": 2,
        "ts-basic-service": 2,
        "ts-station-service": 2,
        "ts-order-service": 2,
        "ts-seat-service": 2,
        "ts-ticketinfo-service": 2,
    }
    services = [
        Service(
            n,
            "http",
            runtimes.get(n, java[0]),
            replicas=busy.get(n, 1),
            port=8080 if n == "ts-gateway-service" else 12000 + i,
            target_util=0.3,
            memory_mb=300 if runtimes.get(n, "java") == "java" else 80,
            memory_limit_mb=600 if runtimes.get(n, "java") == "java" else 200,
            version="1.0.0",
        )
        for i, n in enumerate(names)
    ]
    services.append(
        Service(
            "mysql",
            "mysql",
            "mysql",
            port=3306,
            target_util=0.25,
            memory_mb=900,
            memory_limit_mb=2048,
            version="8.0",
        )
    )

    def sql(stmt: str, t: float = 0.8) -> Call:
        return Call(f"mysql:{stmt}", timeout_ms=t * 1000)

    def http(svc: str, route: str, **kw) -> Call:
        kw.setdefault("timeout_ms", 3000)
        return Call(f"{svc}:{route}", **kw)

    ops: list[Operation] = [
        Operation("mysql", "SELECT", 0.6, 0.4, io_ms=0.25, sigma=0.6),
        Operation("mysql", "INSERT", 1.0, 0.5, io_ms=0.6, sigma=0.5),
        Operation("mysql", "UPDATE", 0.9, 0.5, io_ms=0.5, sigma=0.5),
    ]

    def op(svc: str, route: str, ms: float, *steps: Step, io: float = 0.05) -> str:
        ops.append(Operation(svc, route, ms, ms * 0.7, io_ms=io, steps=tuple(steps)))
        return f"{svc}:{route}"

    v = "/api/v1/"
    verify = op("ts-verification-code-service", f"GET {v}verifycode/verify/{{code}}", 1.5)
    login = op("ts-auth-service", f"POST {v}users/login", 6.0, http(*verify.split(":", 1)), sql("SELECT"))
    user_get = op("ts-user-service", f"GET {v}userservice/users/id/{{userId}}", 2.0, sql("SELECT"))
    user_all = op("ts-user-service", f"GET {v}userservice/users", 3.0, sql("SELECT"))
    contacts_acc = op(
        "ts-contacts-service", f"GET {v}contactservice/contacts/account/{{accountId}}", 2.0, sql("SELECT")
    )
    contacts_get = op("ts-contacts-service", f"GET {v}contactservice/contacts/{{id}}", 1.5, sql("SELECT"))
    station_ids = op("ts-station-service", f"POST {v}stationservice/stations/idlist", 1.5, sql("SELECT"))
    station_all = op("ts-station-service", f"GET {v}stationservice/stations", 2.0, sql("SELECT"))
    train_get = op("ts-train-service", f"GET {v}trainservice/trains/byName/{{name}}", 1.2, sql("SELECT"))
    route_get = op("ts-route-service", f"GET {v}routeservice/routes/{{routeId}}", 1.2, sql("SELECT"))
    route_all = op("ts-route-service", f"GET {v}routeservice/routes", 2.5, sql("SELECT"))
    price_get = op(
        "ts-price-service", f"GET {v}priceservice/prices/{{routeId}}/{{trainType}}", 1.0, sql("SELECT")
    )
    config_get = op("ts-config-service", f"GET {v}configservice/configs/{{configName}}", 0.8, sql("SELECT"))

    def order_ops(svc: str, base: str) -> dict[str, str]:
        return {
            "sold": op(svc, f"POST {v}{base}/order/tickets", 2.0, sql("SELECT")),
            "get": op(svc, f"GET {v}{base}/order/{{orderId}}", 1.5, sql("SELECT")),
            "create": op(svc, f"POST {v}{base}/order", 3.0, sql("INSERT"), io=0.1),
            "modify": op(svc, f"PUT {v}{base}/order", 2.5, sql("UPDATE"), io=0.1),
            "refresh": op(
                svc, f"POST {v}{base}/order/refresh", 3.0, sql("SELECT"), http(*station_ids.split(":", 1))
            ),
            "security": op(
                svc, f"GET {v}{base}/order/security/{{checkDate}}/{{accountId}}", 1.5, sql("SELECT")
            ),
            "all": op(svc, f"GET {v}{base}/order", 4.0, sql("SELECT")),
        }

    order = order_ops("ts-order-service", "orderservice")
    order_other = order_ops("ts-order-other-service", "orderOtherService")

    def c(key: str, **kw) -> Call:
        kw.setdefault("timeout_ms", 3000)
        return Call(key, **kw)

    seat_left = op(
        "ts-seat-service", f"POST {v}seatservice/seats/left_tickets", 2.0, c(order["sold"]), c(config_get)
    )
    seat_left_other = op(
        "ts-seat-service",
        f"POST {v}seatservice/seats/left_tickets_other",
        2.0,
        c(order_other["sold"]),
        c(config_get),
    )
    seat_dist = op("ts-seat-service", f"POST {v}seatservice/seats", 2.5, c(order["sold"]), c(config_get))
    basic = op(
        "ts-basic-service",
        f"POST {v}basicservice/basic/travel",
        3.0,
        c(station_ids),
        c(train_get),
        c(route_get),
        c(price_get),
    )
    ticketinfo = op("ts-ticketinfo-service", f"POST {v}ticketinfoservice/ticketinfo", 1.5, c(basic))

    def travel_ops(svc: str, base: str, seat: str) -> dict[str, str]:
        return {
            "left": op(
                svc,
                f"POST {v}{base}/trips/left",
                4.0,
                sql("SELECT"),
                Repeat("trips", c(ticketinfo), c(seat), c(train_get)),
            ),
            "detail": op(
                svc, f"POST {v}{base}/trip_detail", 3.0, sql("SELECT"), c(ticketinfo), c(seat), c(train_get)
            ),
            "route": op(svc, f"GET {v}{base}/routes/{{tripId}}", 1.5, sql("SELECT"), c(route_get)),
            "admin": op(svc, f"GET {v}{base}/admin_trip", 5.0, sql("SELECT")),
        }

    travel = travel_ops("ts-travel-service", "travelservice", seat_left)
    travel2 = travel_ops("ts-travel2-service", "travel2service", seat_left_other)
    security = op(
        "ts-security-service",
        f"GET {v}securityservice/securityConfigs/{{accountId}}",
        2.0,
        sql("SELECT"),
        c(order["security"]),
        c(order_other["security"]),
    )
    assurance_types = op("ts-assurance-service", f"GET {v}assuranceservice/assurances/types", 0.8)
    assurance_new = op("ts-assurance-service", f"POST {v}assuranceservice/assurances", 2.0, sql("INSERT"))
    station_food = op(
        "ts-station-food-service", f"GET {v}stationfoodservice/stationfoodstores", 2.0, sql("SELECT")
    )
    train_food = op(
        "ts-train-food-service", f"GET {v}trainfoodservice/trainfoods/{{tripId}}", 1.5, sql("SELECT")
    )
    delivery = op("ts-delivery-service", f"POST {v}deliveryservice/delivery", 2.0, sql("INSERT"))
    food_list = op(
        "ts-food-service",
        f"GET {v}foodservice/foods/{{date}}/{{start}}/{{end}}/{{tripId}}",
        3.0,
        c(travel["route"]),
        Par(c(station_food), c(train_food)),
    )
    food_order = op(
        "ts-food-service", f"POST {v}foodservice/orders", 2.5, sql("INSERT"), c(delivery, optional=True)
    )
    food_delivery = op(
        "ts-food-delivery-service",
        f"GET {v}fooddeliveryservice/orders/all",
        3.0,
        sql("SELECT"),
        c(station_food),
    )
    consign_price = op(
        "ts-consign-price-service",
        f"GET {v}consignpriceservice/consignprice/{{weight}}/{{isWithinRegion}}",
        1.0,
        sql("SELECT"),
    )
    consign = op(
        "ts-consign-service", f"PUT {v}consignservice/consigns", 2.5, c(consign_price), sql("INSERT")
    )
    notify = op(
        "ts-notification-service", f"POST {v}notifyservice/notification/preserve_success", 4.0, io=0.5
    )

    def preserve(svc: str, base: str, trav: dict[str, str], ordr: dict[str, str]) -> str:
        return op(
            svc,
            f"POST {v}{base}/preserve",
            5.0,
            c(security),
            c(contacts_get),
            c(trav["detail"]),
            c(seat_dist),
            c(ordr["create"]),
            c(assurance_new, optional=True),
            c(food_order, optional=True),
            c(consign, optional=True),
            c(user_get),
            c(notify, optional=True),
        )

    preserve_ = preserve("ts-preserve-service", "preserveservice", travel, order)
    preserve_other = preserve("ts-preserve-other-service", "preserveotherservice", travel2, order_other)
    payment = op("ts-payment-service", f"POST {v}paymentservice/payment", 2.0, sql("INSERT"))
    drawback = op(
        "ts-inside-payment-service",
        f"GET {v}inside_pay_service/inside_payment/drawback/{{userId}}/{{money}}",
        2.0,
        sql("UPDATE"),
    )
    inside_pay = op(
        "ts-inside-payment-service",
        f"POST {v}inside_pay_service/inside_payment",
        3.0,
        c(order["get"]),
        c(payment),
        c(order["modify"]),
        sql("INSERT"),
    )
    cancel = op(
        "ts-cancel-service",
        f"GET {v}cancelservice/cancel/{{orderId}}/{{loginId}}",
        3.0,
        c(order["get"]),
        c(drawback),
        c(order["modify"]),
        c(user_get),
        c(notify, optional=True),
    )
    rebook = op(
        "ts-rebook-service",
        f"POST {v}rebookservice/rebook",
        4.0,
        c(order["get"]),
        c(travel["detail"]),
        c(seat_dist),
        c(inside_pay),
        c(order["modify"]),
    )
    execute = op(
        "ts-execute-service",
        f"GET {v}executeservice/execute/collected/{{orderId}}",
        2.0,
        c(order["get"]),
        c(order["modify"]),
    )
    route_plan = op(
        "ts-route-plan-service",
        f"POST {v}routeplanservice/routePlan/cheapestRoute",
        4.0,
        Par(c(travel["left"], timeout_ms=6000), c(travel2["left"], timeout_ms=6000)),
    )
    travel_plan = op(
        "ts-travel-plan-service",
        f"POST {v}travelplanservice/travelPlan/cheapest",
        3.0,
        c(route_plan, timeout_ms=8000),
        c(station_ids),
    )
    wait_order = op(
        "ts-wait-order-service", f"POST {v}waitorderservice/order", 2.5, c(contacts_get), sql("INSERT")
    )
    avatar = op("ts-avatar-service", f"POST {v}avatarservice", 25.0)
    news = op("ts-news-service", f"GET {v}newsservice/news", 0.8)
    office = op("ts-ticket-office-service", "GET /office/getRegionList", 1.2)
    voucher = op("ts-voucher-service", "POST /getVoucher", 3.0, sql("SELECT"))
    admin_basic = op(
        "ts-admin-basic-info-service", f"GET {v}adminbasicservice/adminbasic/stations", 2.0, c(station_all)
    )
    admin_order = op(
        "ts-admin-order-service",
        f"GET {v}adminorderservice/adminorder",
        3.0,
        c(order["all"]),
        c(order_other["all"]),
    )
    admin_route = op("ts-admin-route-service", f"GET {v}adminrouteservice/adminroute", 2.0, c(route_all))
    admin_travel = op(
        "ts-admin-travel-service",
        f"GET {v}admintravelservice/admintravel",
        3.0,
        c(travel["admin"]),
        c(travel2["admin"]),
    )
    admin_user = op("ts-admin-user-service", f"GET {v}adminuserservice/users", 2.0, c(user_all))

    journeys_spec = [
        ("login", login, 5.0, ()),
        ("searchTickets", travel["left"], 20.0, (("trips", 1, 4),)),
        ("searchOtherTickets", travel2["left"], 8.0, (("trips", 1, 3),)),
        ("listContacts", contacts_acc, 4.0, ()),
        ("listAssurances", assurance_types, 3.0, ()),
        ("listFood", food_list, 4.0, ()),
        ("preserve", preserve_, 4.0, ()),
        ("preserveOther", preserve_other, 2.0, ()),
        ("pay", inside_pay, 3.0, ()),
        ("cancel", cancel, 1.0, ()),
        ("rebook", rebook, 1.0, ()),
        ("collect", execute, 1.0, ()),
        ("queryOrders", order["refresh"], 6.0, ()),
        ("queryOtherOrders", order_other["refresh"], 2.0, ()),
        ("consignPrice", consign_price, 1.0, ()),
        ("cheapestPlan", travel_plan, 1.0, (("trips", 1, 3),)),
        ("waitOrder", wait_order, 0.5, ()),
        ("avatar", avatar, 0.5, ()),
        ("news", news, 1.0, ()),
        ("ticketOffice", office, 0.5, ()),
        ("voucher", voucher, 0.5, ()),
        ("foodDelivery", food_delivery, 0.3, ()),
        ("adminStations", admin_basic, 0.2, ()),
        ("adminOrders", admin_order, 0.2, ()),
        ("adminRoutes", admin_route, 0.2, ()),
        ("adminTravels", admin_travel, 0.2, ()),
        ("adminUsers", admin_user, 0.2, ()),
    ]
    journeys = []
    for name, target, weight, variables in journeys_spec:
        _svc, route = target.split(":", 1)
        gw = op("ts-gateway-service", route, 0.8, Call(target, timeout_ms=10000))
        journeys.append(Journey(name, gw, weight, variables))
    return Topology(
        "train-ticket",
        "train-ticket",
        tuple(services),
        tuple(ops),
        tuple(journeys),
        traffic_source="load generator (not instrumented, sends HTTP requests to ts-gateway-service)",
        reference="FudanSELab/train-ticket, https://github.com/FudanSELab/train-ticket; Zhou et al., IEEE "
        "TSE 2018",
    )


# ----------------------------------------------------------------------------------------------
# random:N -- a layered DAG for scale tests
# ----------------------------------------------------------------------------------------------


def random_dag(n: int, rng: np.random.Generator) -> Topology:
    """A layered random DAG of ``n`` services: every service is reachable from the gateway, calls go
    only to deeper layers, and about one in ten services is a datastore."""
    n_layers = max(2, min(n, math.ceil(math.log2(n)) + 1))
    sizes = np.full(n_layers - 1, (n - 1) // (n_layers - 1))
    sizes[: (n - 1) % (n_layers - 1)] += 1
    runtimes = ["go", "java", "python", "nodejs", "dotnet"]
    services = [
        Service("gateway", "http", "go", replicas=2, target_util=0.3, memory_mb=60, memory_limit_mb=128)
    ]
    layer_of = {"gateway": 0}
    idx = 1
    for layer, size in enumerate(sizes, start=1):
        for _ in range(size):
            name = f"svc-{idx:04d}"
            idx += 1
            is_store = layer == n_layers - 1 and rng.random() < 0.3
            if is_store:
                rt = "redis" if rng.random() < 0.5 else "mysql"
                services.append(
                    Service(
                        name,
                        rt,
                        rt,
                        port=6379 if rt == "redis" else 3306,
                        target_util=float(rng.uniform(0.15, 0.3)),
                        memory_mb=200,
                        memory_limit_mb=512,
                        version="7.2" if rt == "redis" else "8.0",
                    )
                )
            else:
                rt = runtimes[int(rng.integers(len(runtimes)))]
                proto = "grpc" if rng.random() < 0.6 else "http"
                services.append(
                    Service(
                        name,
                        proto,
                        rt,
                        replicas=int(rng.integers(1, 3)),
                        port=8080,
                        rpc_service=f"sim.{name.replace('-', '_')}.Service" if proto == "grpc" else None,
                        target_util=float(rng.uniform(0.2, 0.4)),
                        memory_mb=float(rng.uniform(40, 250)),
                        memory_limit_mb=512,
                    )
                )
            layer_of[name] = layer

    def names_for(svc: Service, k: int) -> list[str]:
        if svc.protocol == "redis":
            return ["GET", "SET", "HGET"][:k]
        if svc.protocol == "mysql":
            return ["SELECT", "INSERT", "UPDATE"][:k]
        if svc.protocol == "grpc":
            return [f"Method{j}" for j in range(k)]
        return [f"{'GET' if j % 2 == 0 else 'POST'} /api/{svc.name}/r{j}" for j in range(k)]

    by_name = {s.name: s for s in services}
    ops_by_layer: list[list[tuple[str, str]]] = [[] for _ in range(n_layers)]
    for s in services[1:]:
        for name in names_for(s, int(rng.integers(1, 4))):
            ops_by_layer[layer_of[s.name]].append((s.name, name))
    # enough gateway routes that each calls about three first-layer operations: a request touches a
    # bounded part of the system, as in real ones, however large N is
    n_routes = min(64, max(4, math.ceil(len(ops_by_layer[1]) / 3)))
    ops_by_layer[0] = [("gateway", name) for name in names_for(services[0], n_routes)]
    # every operation below the gateway gets one caller in the layer above, then a few extra edges
    calls: dict[tuple[str, str], list[str]] = {o: [] for layer in ops_by_layer for o in layer}
    for layer in range(1, n_layers):
        above = [o for o in ops_by_layer[layer - 1] if by_name[o[0]].instrumented]
        for o in ops_by_layer[layer]:
            caller = above[int(rng.integers(len(above)))]
            calls[caller].append(f"{o[0]}:{o[1]}")
        deeper = [o for lay in ops_by_layer[layer:] for o in lay]
        for caller in above:
            if rng.random() < 0.3:
                o = deeper[int(rng.integers(len(deeper)))]
                key = f"{o[0]}:{o[1]}"
                if key not in calls[caller]:
                    calls[caller].append(key)
    ops = []
    for layer in ops_by_layer:
        for svc_name, name in layer:
            store = not by_name[svc_name].instrumented
            ms = float(rng.uniform(0.1, 0.8)) if store else float(rng.lognormal(math.log(1.5), 0.6))
            steps = tuple(
                Call(
                    k,
                    attempts=2 if svc_name == "gateway" else 1,
                    timeout_ms=1000 if svc_name == "gateway" else 800,
                )
                for k in calls[(svc_name, name)]
            )
            ops.append(Operation(svc_name, name, ms, ms * 0.7, io_ms=0.1 if store else 0.02, steps=steps))
    journeys = tuple(
        Journey(f"route{j}", f"gateway:{name}", float(rng.uniform(0.5, 3.0)))
        for j, (_, name) in enumerate(ops_by_layer[0])
    )
    return Topology(
        f"random:{n}",
        f"random-{n}",
        tuple(services),
        tuple(ops),
        journeys,
        traffic_source="synthetic load generator (not instrumented)",
        reference="generated: layered random DAG (otlp-aiops)",
    )


def build_topology(system: str, rng: np.random.Generator) -> Topology:
    if system == "online-boutique":
        return online_boutique()
    if system == "train-ticket":
        return train_ticket()
    if system.startswith("random:"):
        return random_dag(int(system.split(":", 1)[1]), rng)
    raise ValueError(f"unknown system {system!r}")
