"""The executor setting (:mod:`otlp_aiops.executor`): validation, the local paths, and — marked slow —
a real two-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``, one CPU
each, in a private network namespace so that nothing binds outside the loopback), through which the
ingest, the features (time partitions), one rca and one detect stage and a Ray Tune sweep run and must give the local executor's
outputs, with one Ray worker killed in the middle of the ingest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_aiops.executor import LOCAL, ExecutorConfig, ExecutorError, executor_config, run_tasks

HERE = Path(__file__).parent


def _square_minus(x: int, y: int) -> int:
    return x * x - y


def test_executor_config_from_params_env_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTLP_AIOPS_EXECUTOR", raising=False)
    monkeypatch.delenv("OTLP_AIOPS_RAY_ADDRESS", raising=False)
    assert executor_config({}) == LOCAL
    assert executor_config({"executor": {"kind": "ray", "num_cpus": 2}}) == ExecutorConfig("ray", None, 2, 3)
    monkeypatch.setenv("OTLP_AIOPS_EXECUTOR", "ray")
    monkeypatch.setenv("OTLP_AIOPS_RAY_ADDRESS", "127.0.0.1:6390")
    assert executor_config({"executor": {"kind": "local"}}) == ExecutorConfig("ray", "127.0.0.1:6390")
    assert executor_config({}, kind="ray", address="auto").address == "auto"
    for bad, msg in [({"kind": "spark"}, "one of local, ray"), ({"kind": "ray", "num_cpus": 0}, "num_cpus"),
                     ({"kind": "ray", "max_retries": -1}, "max_retries"), ({"kind": "local", "address": "auto"},
                                                                           "for kind: ray"),
                     ({"kind": "ray", "bogus": 1}, "unknown key")]:
        monkeypatch.delenv("OTLP_AIOPS_EXECUTOR", raising=False)
        monkeypatch.delenv("OTLP_AIOPS_RAY_ADDRESS", raising=False)
        with pytest.raises(ExecutorError, match=msg):
            executor_config({"executor": bad})


def test_run_tasks_keeps_the_task_order_serial_and_in_a_pool() -> None:
    tasks = [(i, i % 3) for i in range(7)]
    expect = [i * i - i % 3 for i in range(7)]
    seen: list[int] = []
    assert run_tasks(_square_minus, tasks, LOCAL, workers=1, order=[6, 5, 4, 3, 2, 1, 0],
                     on_done=lambda i, _r: seen.append(i)) == expect
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    assert run_tasks(_square_minus, tasks, LOCAL, workers=2) == expect
    with pytest.raises(ValueError, match="permutation"):
        run_tasks(_square_minus, tasks, LOCAL, order=[0, 0, 1])


def test_local_executor_never_imports_ray() -> None:
    code = ("import sys; from otlp_aiops.executor import run_tasks, LOCAL; "
            "import otlp_aiops.stages.rca, otlp_aiops.stages.detect, otlp_aiops.otlp.ingest; "
            "import otlp_aiops.features.build, otlp_aiops.features.partitioned; "
            "run_tasks(print, [(1,)], LOCAL); assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _cluster_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private network namespace (unshare -n)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    try:
        import ray  # noqa: F401
    except ImportError:
        return 'needs Ray: pip install -e ".[ray]"'
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        return "needs the ray command beside this Python"
    return None


CLUSTER = HERE / "ray_cluster.sh"


@pytest.mark.slow
def test_two_node_ray_cluster_gives_the_local_outputs(tmp_path: Path) -> None:
    why = _cluster_available()
    if why:
        pytest.skip(why)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["unshare", "-n", "bash", str(CLUSTER), str(tmp_path / "work"), "--kill"],
                          env=env, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1])
    # both nodes were up, and the outputs are the same as the local executor's
    assert result["nodes_alive"] == 2
    assert result["ingest_identical"] and result["ingest_files_compared"] >= 11
    assert result["ingest_ray_records"] == result["ingest_local_records"] > 0
    assert result["features_identical"]  # time partitions as Ray tasks: every file byte-identical
    assert result["rca_random_identical"] and result["rca_baro_identical"] and result["detect_nsigma_identical"]
    assert result["sweep_identical"]  # Ray Tune trials on the cluster = the same trials run locally
    # a worker was killed in the middle of the ingest, the task retried, and the tables are the same
    assert result["killed_worker_pid"] is not None
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the cluster is stopped (the script's trap), also when the driver fails: no raylet is left
    left = subprocess.run(["pgrep", "-f", "raylet.*6390"], capture_output=True, text=True).stdout.strip()
    assert left == ""
