"""Where the fan-out of a stage runs: on this machine (``local``, the default, no Ray import) or on a
Ray cluster (``ray``). Same tasks, same results, in the order they were given.

A task is a module-level function and its arguments (both picklable). Each task must be a pure
function of its arguments, and write, if at all, only to a path of its own that a retry overwrites
whole: so a worker killed mid-task is retried by Ray and the stage's result does not change, and
stages commit their output folder only after every task is done (:mod:`otlp_aiops.outputs`).

Settings (``params.yaml`` ``executor:``, or the CLI's ``--executor`` / ``--ray-address``)::

    executor: {kind: local, address: null, num_cpus: null, max_retries: 3}

- ``kind: local``: tasks run in this process (one worker) or in a process pool;
- ``kind: ray``: tasks run as Ray tasks, one CPU each. ``address``: ``null`` starts a private Ray
  on this machine (``num_cpus`` CPUs); ``auto`` joins the cluster this machine belongs to; a
  ``host:port`` or ``ray://host:port`` joins that cluster. The environment variables
  ``OTLP_AIOPS_EXECUTOR`` and ``OTLP_AIOPS_RAY_ADDRESS`` override the file (for a DVC run on a cluster).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

KINDS = ("local", "ray")


class ExecutorError(ValueError):
    """An executor setting that cannot be used."""


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ExecutorError(f"executor.kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.num_cpus is not None and (
            isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, int) or self.num_cpus < 1
        ):
            raise ExecutorError(
                f"executor.num_cpus must be a whole number ≥ 1 or null, not {self.num_cpus!r}"
            )
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ExecutorError(f"executor.max_retries must be a whole number ≥ 0, not {self.max_retries!r}")
        if self.kind == "local" and self.address:
            raise ExecutorError("executor.address is for kind: ray")

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"


LOCAL = ExecutorConfig()


def executor_config(
    params: Mapping[str, Any] | None = None, *, kind: str | None = None, address: str | None = None
) -> ExecutorConfig:
    """The executor of ``params`` (its ``executor`` section), overridden by the environment
    (``OTLP_AIOPS_EXECUTOR``, ``OTLP_AIOPS_RAY_ADDRESS``) and then by explicit arguments (the CLI)."""
    section = dict((params or {}).get("executor") or {})
    unknown = set(section) - {"kind", "address", "num_cpus", "max_retries"}
    if unknown:
        raise ExecutorError(f"params.yaml executor: unknown key(s) {', '.join(sorted(unknown))}")
    env_kind = os.environ.get("OTLP_AIOPS_EXECUTOR")
    env_address = os.environ.get("OTLP_AIOPS_RAY_ADDRESS")
    if env_kind:
        section["kind"] = env_kind
    if env_address:
        section["address"] = env_address
    if kind:
        section["kind"] = kind
    if address:
        section["address"] = address
    return ExecutorConfig(**section)


def _ray(cfg: ExecutorConfig) -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError('executor.kind: ray needs Ray: pip install -e ".[ray]"') from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "ignore_reinit_error": True,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if cfg.address:
            kwargs["address"] = cfg.address
        else:
            kwargs.update(num_cpus=cfg.num_cpus, include_dashboard=False)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(**kwargs)
    return ray


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    cfg: ExecutorConfig = LOCAL,
    *,
    workers: int | None = 1,
    order: Iterable[int] | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(*t) for t in tasks]``, run by ``cfg``: results in the order of ``tasks`` whatever order
    they finish in. ``workers`` (local only): 1 runs them in this process, more in a process pool.
    ``order``: the order to start them in (e.g. largest first). ``on_done(i, result)`` is called in
    this process as each finishes. The first failure cancels the tasks not yet started and is raised."""
    n = len(tasks)
    start = list(order) if order is not None else list(range(n))
    if sorted(start) != list(range(n)):
        raise ValueError("order must be a permutation of the task indices")
    results: list[Any] = [None] * n
    if cfg.is_ray:
        ray = _ray(cfg)
        remote = ray.remote(num_cpus=1, max_retries=cfg.max_retries, retry_exceptions=False)(fn)
        refs = {remote.remote(*tasks[i]): i for i in start}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = refs[done[0]]
                results[i] = ray.get(done[0])
                if on_done is not None:
                    on_done(i, results[i])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results
    if not workers or workers <= 1 or n <= 1:
        for i in start:
            results[i] = fn(*tasks[i])
            if on_done is not None:
                on_done(i, results[i])
        return results
    with ProcessPoolExecutor(max_workers=min(workers, n), initializer=initializer, initargs=initargs) as ex:
        futures = {ex.submit(fn, *tasks[i]): i for i in start}
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_done is not None:
                    on_done(i, results[i])
        except BaseException:
            for fut in futures:  # no new task starts after a failure
                fut.cancel()
            raise
    return results


def describe(cfg: ExecutorConfig) -> str:
    if not cfg.is_ray:
        return "local"
    return f"ray ({cfg.address or 'private, this machine'})"
