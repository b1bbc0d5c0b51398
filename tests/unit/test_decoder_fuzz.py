"""Mutation fuzzing of the C decoder against the pure-Python one: thousands of cut, flipped and
spliced messages must never crash it, and must decode to exactly what the Python decoder makes of
them (rows, attributes, counts, quarantine reasons), or, for the JSON text path, be handed back
untouched."""

from __future__ import annotations

import os
import random

import orjson
import pytest
import test_decoder_parity as samples

from otlp_aiops.otlp import accel
from otlp_aiops.otlp.context import FileContext
from otlp_aiops.otlp.decode_json import DECODERS, decode_text, signal_of
from otlp_aiops.otlp.decode_proto import decode_message
from otlp_aiops.otlp.ingest import _new_batches

pytestmark = pytest.mark.skipif(accel.wire is None, reason="the C decoder is not built")

# OTLP_AIOPS_FUZZ_CASES / OTLP_AIOPS_FUZZ_SEED run a longer or different campaign locally.
CASES = int(os.environ.get("OTLP_AIOPS_FUZZ_CASES", "1500"))
SEED = int(os.environ.get("OTLP_AIOPS_FUZZ_SEED", "0"))


def _mutations(seed_inputs: list[bytes], n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(rng.choice(seed_inputs))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if not b:
                break
            i = rng.randrange(len(b))
            if op < 0.3:
                del b[i:]  # cut
            elif op < 0.6:
                b[i] = rng.randrange(256)  # flip a byte
            elif op < 0.8:
                j = rng.randrange(len(b))
                b[i:i] = b[j : j + rng.randint(1, 40)]  # splice a piece of itself in
            else:
                del b[i : i + rng.randint(1, 20)]  # drop a piece
        out.append(bytes(b))
    return out


def _state(fc: FileContext, batches: dict) -> tuple:
    """Everything a decoder leaves behind, with attribute keys resolved to strings."""

    def attrs(ac):
        table = list(ac.kidx)
        return [table[k] for k in ac.keys], list(ac.vals), list(ac.tag_pos), list(ac.tags)

    t, lg = batches["traces"], batches["logs"]
    ctx = {
        name: [(b.ctx.items[r[col]][0].resource_id, b.ctx.items[r[col]][1].scope_id) for r in b.rows]
        for name, b, col in (("traces", t, 17), ("logs", lg, 12))
    }
    rows = {
        "traces": [r[:17] + r[18:] for r in t.rows],
        "logs": [r[:12] + r[13:] for r in lg.rows],
    }
    return (
        rows, ctx, t.events, t.links, attrs(t.attrs), attrs(t.event_attrs), attrs(t.link_attrs), attrs(lg.attrs),
        fc.records_read, fc.records_quarantined, fc.messages_quarantined, dict(fc.quarantined_by_reason),
        dict(fc.unknown_fields), fc.ids_base64, sorted(fc.resources), sorted(fc.scopes),
        [(q["path"], q["reason_code"]) for q in fc.quarantine],
    )  # fmt: skip


def _run_proto(payload: bytes, signal: str, wire) -> tuple:
    saved, accel.wire = accel.wire, wire
    try:
        fc, batches = FileContext("f"), _new_batches("f")
        decode_message(payload, signal, fc, batches[signal], "m")
        return _state(fc, batches)
    finally:
        accel.wire = saved


def test_protobuf_mutations_match_the_python_decoder(monkeypatch):
    wire = accel.wire
    monkeypatch.setattr(accel, "wire", wire)
    seeds = {
        "traces": [samples._span_request().SerializeToString(), samples._broken_spans_payload()],
        "logs": [samples._log_request().SerializeToString()],
    }
    for signal, inputs in seeds.items():
        for i, m in enumerate(_mutations(inputs, CASES, seed=SEED + 7)):
            c = _run_proto(m, signal, wire)
            py = _run_proto(m, signal, None)
            assert c == py, f"{signal} mutation {i}: {m.hex()}"


def _run_json_text(text: bytes) -> tuple[str | None, tuple]:
    fc, batches = FileContext("f"), _new_batches("f")
    return decode_text(text, fc, batches, "line"), _state(fc, batches)


def _run_json_dict(text: bytes) -> tuple:
    fc, batches = FileContext("f"), _new_batches("f")
    obj = orjson.loads(text)
    sig = signal_of(obj)
    DECODERS[sig](obj, fc, batches[sig], "line")
    return _state(fc, batches)


_ODD_VALUES = [None, 0, -1, 1.5, 2**63, 2**64, "", "x", "00ff", "NaN", True, [], {}, "1700000000000000000",
               "SPAN_KIND_SERVER", "\u00e9", "0102030405060708090a0b0c0d0e0f10", -0.0, 1e308]  # fmt: skip


def _tree_mutations(seed_inputs: list[bytes], n: int, seed: int) -> list[bytes]:
    """Valid JSON that strays from the common form: values swapped for odd ones, keys dropped,
    renamed or added, elements duplicated, keys reordered, other formatting."""
    import json

    rng = random.Random(seed)

    def nodes(x, out):
        out.append(x)
        if isinstance(x, dict):
            for v in x.values():
                nodes(v, out)
        elif isinstance(x, list):
            for v in x:
                nodes(v, out)
        return out

    out = []
    for _ in range(n):
        doc = json.loads(rng.choice(seed_inputs))
        for _ in range(rng.randint(1, 3)):
            containers = [x for x in nodes(doc, []) if isinstance(x, (dict, list)) and x]
            if not containers:
                break
            target = rng.choice(containers)
            if isinstance(target, dict):
                k = rng.choice(list(target))
                op = rng.random()
                if op < 0.5:
                    target[k] = rng.choice(_ODD_VALUES)
                elif op < 0.65:
                    del target[k]
                elif op < 0.8:
                    target[k + rng.choice(["_x", "Id", ""])] = target.pop(k)
                else:
                    items = list(target.items())
                    rng.shuffle(items)
                    target.clear()
                    target.update(items)
            else:
                i = rng.randrange(len(target))
                if rng.random() < 0.5:
                    target.insert(i, json.loads(json.dumps(target[i])))
                else:
                    target[i] = rng.choice(_ODD_VALUES)
        out.append(json.dumps(doc, indent=rng.choice([None, 1])).encode())
    return out


def test_json_text_mutations_match_the_dict_decoder(monkeypatch):
    wire = accel.wire
    seeds = samples._common_form_lines()
    empty = None
    taken = 0
    cases = _mutations(seeds, CASES, seed=SEED + 11) + _tree_mutations(seeds, CASES, seed=SEED + 12)
    for i, m in enumerate(cases):
        monkeypatch.setattr(accel, "wire", wire)
        sig, state = _run_json_text(m)
        if sig is None:
            if empty is None:
                empty = _run_json_text(b"{}")[1]
            assert state == empty, f"mutation {i} was handed back but left rows behind: {m!r}"
            continue
        taken += 1
        monkeypatch.setattr(accel, "wire", None)
        assert state == _run_json_dict(m), f"mutation {i}: {m!r}"
    assert taken > CASES // 5  # enough mutations are decoded for the comparison to mean something


@pytest.mark.slow
def test_long_campaign(monkeypatch):
    """Twenty times as many mutations, with other seeds (CI runs the slow tests)."""
    import sys

    module = sys.modules[__name__]
    monkeypatch.setattr(module, "CASES", 30000)
    for seed in (1000, 2000):
        monkeypatch.setattr(module, "SEED", seed)
        test_protobuf_mutations_match_the_python_decoder(monkeypatch)
        test_json_text_mutations_match_the_dict_decoder(monkeypatch)
