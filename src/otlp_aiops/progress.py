"""Progress of long steps (ingest, features, rca/detect, dataset import): a rich progress bar with an
ETA when stderr is a terminal; otherwise (a log file, CI, ``dvc repro`` writing to a pipe) one plain
line on stderr now and then, so a step that runs more than a few seconds is never silent.

``OTLP_AIOPS_PROGRESS`` = ``auto`` (default) | ``bar`` | ``log`` | ``off`` picks the mode;
``OTLP_AIOPS_PROGRESS_INTERVAL`` (seconds, default 10) is the time between two log lines.

Usage::

    with progress.task("rca sim-boutique dowhy", total=400, unit="cases") as bar:
        for case in cases:
            ...
            bar.advance()          # or progress.advance() from code that has no handle on the bar

The innermost open task is the *current* one: :func:`advance` and :func:`step` act on it, and are
no-ops when none is open (library code may call them unconditionally).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

MODES = ("auto", "bar", "log", "off")
DEFAULT_INTERVAL_S = 10.0
FIRST_LINE_AFTER_S = 5.0  # log mode: a step shorter than this prints nothing at all

_lock = threading.RLock()
_stack: list[Task] = []
_rich: dict[str, Any] = {"progress": None, "users": 0}


def mode() -> str:
    """The progress mode for this process: ``bar``, ``log`` or ``off``."""
    m = os.environ.get("OTLP_AIOPS_PROGRESS", "auto").strip().lower() or "auto"
    if m not in MODES:
        m = "auto"
    if m == "auto":
        try:
            return "bar" if sys.stderr.isatty() else "log"
        except (AttributeError, ValueError):
            return "log"
    return m


def interval_s() -> float:
    try:
        v = float(os.environ.get("OTLP_AIOPS_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return v if v > 0 else DEFAULT_INTERVAL_S


def fmt_seconds(s: float) -> str:
    """``75.2`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    s = max(0, round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_amount(n: float, unit: str, as_bytes: bool) -> str:
    if not as_bytes:
        return f"{n:,.0f}"
    for scale, suffix in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


class Task:
    """One progress task. ``total`` may be None (unknown); ``as_bytes`` shows amounts as sizes."""

    def __init__(
        self,
        description: str,
        total: float | None = None,
        unit: str = "items",
        *,
        as_bytes: bool = False,
        mode_: str | None = None,
        interval: float | None = None,
        first_after: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.as_bytes = as_bytes
        self.done = 0.0
        self.note = ""
        self.mode = mode_ or mode()
        self.interval = interval if interval is not None else interval_s()
        self.first_after = FIRST_LINE_AFTER_S if first_after is None else first_after
        self.stream = stream
        self.t0 = time.monotonic()
        self.last_line = self.t0
        self.lines = 0
        self._rich_task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reporting -------------------------------------------------------------------------------
    def advance(self, n: float = 1, note: str | None = None) -> None:
        with _lock:
            self.done += n
            if note is not None:
                self.note = note
            if self._rich_task is not None:
                _rich["progress"].update(self._rich_task, advance=n, note=self.note)

    def step(self, note: str) -> None:
        """Name what is being done now (shown next to the bar and in the log line)."""
        with _lock:
            self.note = note
            if self._rich_task is not None:
                _rich["progress"].update(self._rich_task, note=note)

    def set_total(self, total: float | None) -> None:
        with _lock:
            self.total = total
            if self._rich_task is not None:
                _rich["progress"].update(self._rich_task, total=total)

    def line(self, final: bool = False) -> str:
        """The plain status line: ``what: 120/400 cases (30 %), 0:45 elapsed, ETA 1:45 [note]``."""
        elapsed = time.monotonic() - self.t0
        done = fmt_amount(self.done, self.unit, self.as_bytes)
        unit = "" if self.as_bytes else f" {self.unit}"
        if self.total:
            total = fmt_amount(self.total, self.unit, self.as_bytes)
            pct = 100.0 * self.done / self.total
            text = f"{self.description}: {done}/{total}{unit} ({pct:.0f} %), {fmt_seconds(elapsed)} elapsed"
            if final:
                text = f"{self.description}: done, {done}{unit} in {fmt_seconds(elapsed)}"
            elif 0 < self.done < self.total:
                text += f", ETA {fmt_seconds(elapsed / self.done * (self.total - self.done))}"
        elif not self.done:  # nothing counted: the time only
            text = f"{self.description}: {fmt_seconds(elapsed)} elapsed"
            if final:
                text = f"{self.description}: done in {fmt_seconds(elapsed)}"
        else:
            text = f"{self.description}: {done}{unit}, {fmt_seconds(elapsed)} elapsed"
            if final:
                text = f"{self.description}: done, {done}{unit} in {fmt_seconds(elapsed)}"
        if self.note and not final:
            text += f" [{self.note}]"
        return text

    def _emit(self, final: bool = False) -> None:
        stream = self.stream or sys.stderr
        with _lock:  # printed under the lock: a fork (see _before_fork) never sees a half-written line
            text = self.line(final)
            self.last_line = time.monotonic()
            self.lines += 1
            with contextlib.suppress(OSError, ValueError):  # a closed stream must not break the work
                print(text, file=stream, flush=True)

    def _heartbeat(self) -> None:
        tick = min(1.0, self.interval / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now - self.t0 >= self.first_after and now - self.last_line >= self.interval:
                self._emit()

    # --- lifetime --------------------------------------------------------------------------------
    def start(self) -> Task:
        if self.mode == "bar":
            self._rich_task = _rich_add(self)
        elif self.mode == "log":
            # the first line comes after first_after, then one every interval
            self.last_line = self.t0 - self.interval + self.first_after
            self._thread = threading.Thread(target=self._heartbeat, name="progress", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            if time.monotonic() - self.t0 >= self.first_after:
                self._emit(final=True)
        if self._rich_task is not None:
            with _lock:
                p = _rich["progress"]
                if self.total is None:
                    p.update(self._rich_task, total=self.done)
                p.refresh()
            _rich_release()
            self._rich_task = None


def _rich_add(t: Task) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class AmountColumn(ProgressColumn):
        """``120/400 cases`` or ``12.5 MB/286.0 MB``."""

        def render(self, task: Any) -> Text:
            as_bytes, unit = task.fields.get("as_bytes", False), task.fields.get("unit", "")
            done = fmt_amount(task.completed, unit, as_bytes)
            total = "?" if task.total is None else fmt_amount(task.total, unit, as_bytes)
            return Text(f"{done}/{total}" + ("" if as_bytes else f" {unit}"))

    with _lock:
        p = _rich["progress"]
        if p is None:
            p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                AmountColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}", style="dim"),
                console=Console(file=t.stream or sys.stderr),
                transient=False,
            )
            _rich["progress"] = p
            p.start()
        _rich["users"] += 1
        return p.add_task(t.description, total=t.total, note=t.note, unit=t.unit, as_bytes=t.as_bytes)


def _rich_release() -> None:
    with _lock:
        _rich["users"] -= 1
        if _rich["users"] <= 0:
            p = _rich["progress"]
            _rich["progress"] = None
            _rich["users"] = 0
            if p is not None:
                p.stop()


_fork_held: list[Any] = []


def _before_fork() -> None:
    """Worker pools fork while a heartbeat or rich refresh thread may be writing to stderr: hold both
    locks across the fork, so the child never inherits a lock (or a stream buffer) held mid-write."""
    _lock.acquire()
    live_lock = getattr(getattr(_rich["progress"], "live", None), "_lock", None)
    if live_lock is not None:
        live_lock.acquire()
        _fork_held.append(live_lock)


def _after_fork() -> None:
    while _fork_held:
        _fork_held.pop().release()
    _lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


@contextmanager
def task(
    description: str, total: float | None = None, unit: str = "items", *, as_bytes: bool = False, **kw: Any
) -> Iterator[Task]:
    """Open a progress task for the ``with`` block; it becomes the current task."""
    t = Task(description, total, unit, as_bytes=as_bytes, **kw).start()
    with _lock:
        _stack.append(t)
    try:
        yield t
    finally:
        with _lock:
            if t in _stack:
                _stack.remove(t)
        t.close()


def current() -> Task | None:
    with _lock:
        return _stack[-1] if _stack else None


def advance(n: float = 1, note: str | None = None) -> None:
    """Advance the current task (no-op without one)."""
    t = current()
    if t is not None:
        t.advance(n, note)


def step(note: str) -> None:
    """Name the current task's step (no-op without one)."""
    t = current()
    if t is not None:
        t.step(note)
