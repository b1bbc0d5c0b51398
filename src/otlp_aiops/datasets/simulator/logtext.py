"""Log message templates: what each service writes per request, on trouble, and over its lifetime.

The wording is this project's own (in the style of the systems' logs, not copied from them). A
template is a ``str.format`` string; fields known when the template is built (service, operation,
peer, status) are filled in once, the rest (ids, amounts, durations) per record from
:data:`DYNAMIC_FIELDS`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

INFO, WARN, ERROR = 9, 13, 17
SEVERITY_TEXT = {INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}

CURRENCIES = ("EUR", "USD", "JPY", "GBP", "CAD", "TRY", "CHF", "SEK", "BRL", "INR")
AD_WORDS = ("clothing", "accessories", "footwear", "hair", "decor", "kitchen", "vintage", "cycling")
TOKEN = "bcdfghjklmnpqrstvwxz0123456789"


def _token(u: float, n: int = 10) -> str:
    """n characters drawn from the uniform u (an LCG stretches its 53 bits over any length)."""
    x = int(u * 2**53)
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append(TOKEN[(x >> 33) % len(TOKEN)])
    return "".join(out).upper()


# dynamic fields: u0, u1 are uniforms fixed per request (derived from its trace id, so the user,
# product and currency agree across one request's log lines), u2 is fresh per record, ms a duration
DYNAMIC_FIELDS: dict[str, Callable[[float, float, float, float], str]] = {
    "ms": lambda u0, u1, u2, ms: f"{ms:.1f}",
    "user": lambda u0, u1, u2, ms: f"u{int(u0 * 900_000) + 100_000}",
    "session": lambda u0, u1, u2, ms: _token(u1, 12).lower(),
    "rid": lambda u0, u1, u2, ms: _token(u1, 10),
    "product": lambda u0, u1, u2, ms: _token(u1, 10),
    "qty": lambda u0, u1, u2, ms: str(1 + int(u2 * 5)),
    "items": lambda u0, u1, u2, ms: str(1 + int(u1 * 4)),
    "amount": lambda u0, u1, u2, ms: f"{4 + u2 * 250:.2f}",
    "cur": lambda u0, u1, u2, ms: CURRENCIES[int(u0 * 7919) % len(CURRENCIES)],
    "order": lambda u0, u1, u2, ms: (
        f"{int(u1 * 2**32):08x}-{int(u0 * 2**16):04x}-{int(u1 * 2**40) % 2**16:04x}"
    ),
    "tracking": lambda u0, u1, u2, ms: f"{_token(u1, 2)}-{int(u1 * 1e7) % 100_000:05d}-{int(u0 * 1e8):08d}",
    "last4": lambda u0, u1, u2, ms: f"{int(u0 * 1e7) % 10_000:04d}",
    "txid": lambda u0, u1, u2, ms: _token(u2, 16).lower(),
    "email": lambda u0, u1, u2, ms: f"customer{int(u0 * 1e6) % 10_000}@example.com",
    "k": lambda u0, u1, u2, ms: str(1 + int(u2 * 5)),
    "words": lambda u0, u1, u2, ms: ", ".join(
        AD_WORDS[int(u * len(AD_WORDS))] for u in (u1, u2)[: 1 + int(u2 * 2)]
    ),
    "pct": lambda u0, u1, u2, ms: f"{ms:.0f}",
    "train": lambda u0, u1, u2, ms: f"{'GDZKT'[int(u1 * 5)]}{int(u1 * 9e5) % 9000 + 1000}",
    "station": lambda u0, u1, u2, ms: ("shanghai", "beijing", "nanjing", "suzhou", "taiyuan", "wuxi")[
        int(u2 * 6)
    ],
}

# per operation INFO lines (Online Boutique); other systems use GENERIC_INFO
OPERATION_INFO: dict[str, tuple[str, ...]] = {
    "currencyservice:GetSupportedCurrencies": ("returning {n_cur} supported currencies",),
    "currencyservice:Convert": ("converted {amount} USD to {cur}",),
    "cartservice:GetCart": ("loading cart of user {user}",),
    "cartservice:AddItem": ("adding product {product} (quantity {qty}) to the cart of user {user}",),
    "cartservice:EmptyCart": ("emptying the cart of user {user}",),
    "recommendationservice:ListRecommendations": ("recommending {k} products to user {user}",),
    "adservice:GetAds": ("selecting ads for context keys [{words}]",),
    "shippingservice:GetQuote": ("quote requested for {items} items", "quote computed: {amount} USD"),
    "shippingservice:ShipOrder": ("shipment booked with tracking id {tracking}",),
    "paymentservice:Charge": ("charged {amount} {cur} to card ending {last4}, transaction {txid}",),
    "emailservice:SendOrderConfirmation": ("sending order confirmation to {email}",),
    "checkoutservice:PlaceOrder": (
        "placing order for user {user} in {cur}",
        "order {order} placed with {items} items, shipment {tracking}",
    ),
}
GENERIC_INFO = ("{name}: request from user {user} processed in {ms} ms",)
ENTRY_INFO = (
    "request started: {method} {path}",
    "request complete: {method} {path} status={status} took={ms}ms",
)

SLOW = "slow request: {name} took {ms} ms (threshold {threshold} ms)"
RETRY = "call to {peer} {callee} failed with {code}; retrying (attempt {next}/{attempts})"
OPTIONAL = "{callee} on {peer} failed with {code}; continuing without it"
EXCEPTION = "unhandled {exc_type} in {name}: {exc_message}"
DEPENDENCY = "{name} failed: call to {peer} {callee} returned {code}"
# the other code path of a `code_return` fault: a wrong (default) result, no error
WRONG_PATH = "{name}: no matching record for request {rid}; returning the default result"

LIFECYCLE: dict[str, tuple[int, str]] = {
    "start": (INFO, "starting {service} version {version}"),
    "listen": (INFO, "server listening on port {port}"),
    "sigterm": (WARN, "received SIGTERM, draining in-flight requests"),
    "stopped": (INFO, "shutdown complete"),
    "memory": (WARN, "memory at {pct}% of the container limit; garbage collection cannot keep up"),
    "disk": (WARN, "disk write took {ms} ms; storage is slow"),
}
DATASTORE_LIFECYCLE: dict[str, dict[str, str]] = {
    "redis": {
        "start": "redis {version} starting",
        "listen": "ready to accept connections on port {port}",
        "memory": "used memory at {pct}% of maxmemory",
        "disk": "AOF fsync is taking too long ({ms} ms); disk busy?",
    },
    "mysql": {
        "start": "mysqld {version} starting",
        "listen": "ready for connections on port {port}",
        "memory": "buffer pool memory at {pct}% of the limit",
        "disk": "InnoDB: page write took {ms} ms; the disk is slow",
    },
}

# (type, message) thrown by a code fault (a bug in one operation) and as background noise
EXCEPTIONS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "go": (
        ("runtime.Error", "invalid memory address or nil pointer dereference"),
        ("io.ErrUnexpectedEOF", "unexpected EOF reading request body"),
    ),
    "java": (
        ("java.lang.NullPointerException", 'Cannot invoke "Object.toString()" because "value" is null'),
        ("java.util.ConcurrentModificationException", "collection modified during iteration"),
    ),
    "dotnet": (
        ("System.NullReferenceException", "Object reference not set to an instance of an object."),
        ("System.TimeoutException", "The operation has timed out."),
    ),
    "nodejs": (
        ("TypeError", "Cannot read properties of undefined (reading 'units')"),
        ("Error", "socket hang up"),
    ),
    "python": (
        ("KeyError", "'product_id'"),
        ("ConnectionResetError", "[Errno 104] Connection reset by peer"),
    ),
}


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def partial(template: str, static: dict[str, object]) -> tuple[str, tuple[str, ...]]:
    """Fill the static fields; return the remaining format string and its dynamic field names.

    Static values are literal text, except ``path``, whose ``{rid}`` stays a dynamic field."""
    values = {
        k: str(v) if k == "path" else str(v).replace("{", "{{").replace("}", "}}") for k, v in static.items()
    }
    values.setdefault("n_cur", str(len(CURRENCIES)))
    text = string.Formatter().vformat(template, (), _Keep(values))
    names = tuple(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(text) if f))
    unknown = [n for n in names if n not in DYNAMIC_FIELDS]
    if unknown:
        raise KeyError(f"log template {template!r}: no value for {unknown}")
    if not names:
        text = text.format()  # undo the escaping: render() returns it as is
    return text, names


def render(text: str, names: tuple[str, ...], u0: float, u1: float, u2: float, ms: float) -> str:
    if not names:
        return text
    return text.format(**{n: DYNAMIC_FIELDS[n](u0, u1, u2, ms) for n in names})


def route_path(route: str) -> str:
    """``/product/{id}`` -> ``/product/{rid}`` (a concrete id per record)."""
    return re.sub(r"\{[^}]+\}", "{rid}", route)
