"""otlp_aiops.outputs: the claim on an output folder (refusals, lock, crash recovery, atomic swap),
atomic and deterministic file writes, and collision-free / validated names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from otlp_aiops.outputs import (
    OWNER_FILE,
    OutputError,
    atomic_write_bytes,
    atomic_write_text,
    check_name,
    claim_output,
    file_stem,
    npz_bytes,
    output_lock,
    write_npz,
)

DEAD_PID = 2**22 + 12345  # above the default pid_max (4194304): no process has it


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------------


def test_refuses_an_output_that_is_contains_or_lies_inside_an_input(tmp_path: Path) -> None:
    inp = tmp_path / "p" / "in"
    inp.mkdir(parents=True)
    (inp / "a.jsonl").write_text("x")
    for out, word in [
        (inp, "is the input"),
        (tmp_path / "p", "contains the input"),
        (inp / "sub", "lies inside the input"),
    ]:
        with pytest.raises(OutputError, match=word), claim_output(out, owner="ingest", inputs=[inp]):
            pass
    assert (inp / "a.jsonl").read_text() == "x" and sorted(os.listdir(tmp_path / "p")) == ["in"]


def test_overlap_check_sees_through_symlinks(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "keep").write_text("1")
    link = tmp_path / "alias"
    link.symlink_to(inp)
    with pytest.raises(OutputError, match="is the input"), claim_output(link, owner="ingest", inputs=[inp]):
        pass
    loop = tmp_path / "loop"
    loop.symlink_to(loop)  # a symlink loop among the inputs: neither a hang nor a traceback
    with claim_output(tmp_path / "out", owner="ingest", inputs=[loop / "x"]) as tmp:
        (tmp / "v").write_text("ok")
    assert (tmp_path / "out" / "v").read_text() == "ok"
    assert (inp / "keep").read_text() == "1"


def test_refuses_a_folder_that_is_not_empty_and_not_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with (
        pytest.raises(OutputError, match=r"not empty and not written by features"),
        claim_output(out, owner="features", known_files=("summary.json",)) as tmp,
    ):
        (tmp / "x").write_text("y")
    assert _tree(out) == {"thesis.tex": b"years of work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder or lock left
    # another stage's marker is not ours either
    other = tmp_path / "other"
    other.mkdir()
    (other / OWNER_FILE).write_text(json.dumps({"owner": "ingest"}))
    with pytest.raises(OutputError, match="not written by features"), claim_output(other, owner="features"):
        pass
    (tmp_path / "afile").write_text("z")
    with pytest.raises(OutputError, match="not a folder"), claim_output(tmp_path / "afile", owner="features"):
        pass


def test_replaces_its_own_output_empty_folders_and_known_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_output(out, owner="features") as tmp:
        assert tmp == tmp_path / f".out.tmp-{os.getpid()}"
        (tmp / "a.txt").write_text("1")
    assert _tree(out) == {OWNER_FILE: b'{"owner": "features"}\n', "a.txt": b"1"}
    with claim_output(out, owner="features") as tmp:  # ours (marker): replaced as a whole
        (tmp / "b.txt").write_text("2")
    assert sorted(_tree(out)) == [OWNER_FILE, "b.txt"]
    legacy = tmp_path / "legacy"  # written before markers existed: its report file says it is ours
    legacy.mkdir()
    (legacy / "summary.json").write_text("{}")
    with claim_output(legacy, owner="features", known_files=("summary.json",), marker=False) as tmp:
        (tmp / "c.txt").write_text("3")
    assert _tree(legacy) == {"c.txt": b"3"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with claim_output(empty, owner="x", marker=False) as tmp:
        (tmp / "d").write_text("4")
    assert _tree(empty) == {"d": b"4"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "legacy", "out"]


def test_a_failed_run_leaves_the_previous_output_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("old")
    before = _tree(out)
    with pytest.raises(ZeroDivisionError), claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("new")
        1 / 0  # noqa: B018
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------------------------------------
# lock
# ------------------------------------------------------------------------------------------------


def test_a_second_writer_fails_fast_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("first")
        lock = tmp_path / ".out.lock"
        assert lock.read_text() == f"{os.getpid()}\n"
        # another process: flock is per open file, so this is a real second run
        code = (
            "import sys; from otlp_aiops.outputs import claim_output, OutputError\n"
            "try:\n"
            f"    with claim_output({str(out)!r}, owner='s') as t: pass\n"
            "except OutputError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert r.stdout.strip() == (
            f"{out}: another run is writing this output (lock {lock} is held); wait for it to finish "
            "or choose another output"
        )
        with (
            pytest.raises(OutputError, match="another run is writing"),
            output_lock(out),
        ):  # and in this process too
            pass
    assert _tree(out)["v"] == b"first"
    assert not (tmp_path / ".out.lock").exists()  # released and removed
    with output_lock(out):  # free again
        pass


# ------------------------------------------------------------------------------------------------
# crash recovery
# ------------------------------------------------------------------------------------------------


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stale = tmp_path / f".out.tmp-{DEAD_PID}"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "junk").write_text("x")
    live = tmp_path / f".out.tmp-{os.getppid()}"  # a live process (our parent)
    live.mkdir()
    unrelated = tmp_path / f".outer.tmp-{DEAD_PID}"  # another output's temporary: not touched
    unrelated.mkdir()
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name, "out"])


def test_a_crash_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("previous")
    # the state a kill -9 between `out -> .out.old-PID` and `tmp -> out` leaves behind
    os.replace(out, tmp_path / f".out.old-{DEAD_PID}")
    (tmp_path / f".out.tmp-{DEAD_PID}").mkdir()
    assert not out.exists()
    # a run that fails still first restores the previous output
    with pytest.raises(RuntimeError), claim_output(out, owner="s"):
        assert (out / "v").read_text() == "previous"
        raise RuntimeError("stop")
    assert (out / "v").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # with OUT present, a stale .old copy is just removed
    (tmp_path / f".out.old-{DEAD_PID}").mkdir()
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("next")
    assert (out / "v").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_kill_9_mid_write_leaves_the_output_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_output(out, owner="s") as tmp:
        (tmp / "v").write_text("previous")
    code = (
        "import os, signal; from otlp_aiops.outputs import claim_output\n"
        f"with claim_output({str(out)!r}, owner='s') as t:\n"
        "    (t / 'v').write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == -9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 3 and left[0].startswith(".out.lock") and left[1].startswith(".out.tmp-")
    assert (out / "v").read_text() == "previous"
    with claim_output(out, owner="s") as tmp:  # the dead writer's lock is free, its temporary removed
        (tmp / "v").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "v").read_text() == "new"


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------


def test_atomic_writes_replace_whole_files_and_leave_nothing_on_error(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "héllo\n")
    assert p.read_bytes() == "héllo\n".encode()
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    atomic_write_bytes(p, [b"a", b"b"])
    assert p.read_bytes() == b"ab"

    def chunks():
        yield b"partial"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(p, chunks())
    assert p.read_bytes() == b"ab" and os.listdir(p.parent) == ["f.txt"]


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_npz_bytes_are_deterministic_and_load_back(tmp_path: Path) -> None:
    arrays = {"times": np.array([1, 2], "datetime64[ns]"), "values": np.arange(6.0).reshape(2, 3)}
    a = npz_bytes(arrays)
    b = npz_bytes(dict(arrays))
    assert a == b
    write_npz(tmp_path / "x.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "x.npz") as z:
        assert [i.date_time for i in z.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 2
        assert z.namelist() == ["times.npy", "values.npy"]
    assert (tmp_path / "x.npz").read_bytes() == a
    with np.load(tmp_path / "x.npz") as z:
        assert z["times"].tolist() == arrays["times"].tolist()
        assert z["values"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------


def test_file_stems_are_collision_free() -> None:
    assert file_stem("inc-0001") == "inc-0001"  # safe names are kept
    assert file_stem("nezha-2023-01-29-01") == "nezha-2023-01-29-01"
    a, b = file_stem("x/1"), file_stem("x_1")
    assert b == "x_1" and a.startswith("x_1-") and len(a) == len("x_1-") + 10 and a != b
    assert file_stem("x_1-" + a[-10:]) != a  # a safe name that looks hashed is hashed too
    assert file_stem("../etc/passwd")[:-10] == "_etc_passwd-"  # no separator, not hidden
    assert not file_stem(".hidden").startswith(".")
    assert file_stem("") != "" and file_stem("a b") != file_stem("a_b")
    keys = ["x/1", "x_1", "x\\1", "x 1", "x:1", "X_1", ".x_1", "x_1.", "é"]
    assert len({file_stem(k) for k in keys}) == len(keys)


@pytest.mark.parametrize("name", ["", "/abs/folder", "../../x", "a/b", "..", ".hidden", "a\\b", "x..y", "-x"])
def test_check_name_refuses_names_that_are_not_one_plain_component(name: str) -> None:
    with pytest.raises(OutputError):
        check_name(name)


@pytest.mark.parametrize(
    "name", ["sim-boutique", "nezha-tt", "rcd-sockshop", "sim-boutique-train", "a.b_c+1"]
)
def test_check_name_accepts_plain_names(name: str) -> None:
    assert check_name(name) == name


def test_saved_models_hold_no_wall_clock_values() -> None:
    from otlp_aiops.persist import without_timings

    state = {
        "weights_": {"w": 1},
        "epoch_seconds_": [0.1, 0.2],
        "n_epochs_": 2,
        "train_info_": {"train_seconds": 3.5, "history": [[1.0, 2.0]], "device": "cpu"},
    }
    assert without_timings(state) == {
        "weights_": {"w": 1},
        "n_epochs_": 2,
        "train_info_": {"history": [[1.0, 2.0]], "device": "cpu"},
    }


@pytest.mark.parametrize("script", ["features", "ingest", "raw", "rca"])
def test_stages_refuse_a_dataset_name_that_is_a_path(tmp_path: Path, script: str) -> None:
    root = Path(__file__).resolve().parents[2]
    args = ["--dataset", "../../x"] if script == "features" else ["../../x"]
    if script == "rca":
        args.append("baro")
    (tmp_path / "params.yaml").write_text("datasets: ['../../x']\ningest: {workers: 1, batch_rows: 100}\n")
    r = subprocess.run(
        [sys.executable, str(root / "pipelines" / f"{script}.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: dataset name '../../x': not a plain name (use letters, digits and ._+-, starting with a "
        "letter or digit; no '/', '..' or absolute paths)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written anywhere


def test_features_cli_refuses_an_absolute_dataset_name(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from otlp_aiops.features.cli import app

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["--dataset", str(victim), "--params", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2
    assert f"error: dataset name '{victim}': not a plain name" in res.output
    assert _tree(victim) == {"keep.txt": b"mine"}


def test_ingest_refuses_an_out_that_holds_its_input_and_keeps_every_file(tmp_path: Path) -> None:
    from otlp_aiops.otlp.ingest import IngestFatalError, ingest_paths

    p = tmp_path / "p"
    (p / "in").mkdir(parents=True)
    (p / "in" / "traces.jsonl").write_text('{"resourceSpans": []}\n')
    (p / "notes.txt").write_text("other work")
    before = _tree(p)
    for out in (p, p / "in", p / "in" / "out"):
        with pytest.raises(IngestFatalError, match=r"the output (contains|is|lies inside) the input"):
            ingest_paths([p / "in"], out, workers=1)
    assert _tree(p) == before and sorted(os.listdir(tmp_path)) == ["p"]
    other = tmp_path / "not-ours"
    other.mkdir()
    (other / "x.parquet").write_text("someone's table")
    with pytest.raises(IngestFatalError, match="not empty and not written by ingest"):
        ingest_paths([p / "in"], other, workers=1)
    assert _tree(other) == {"x.parquet": b"someone's table"}
    ok = tmp_path / "interim"
    ingest_paths([p / "in"], ok, workers=1)
    assert json.loads((ok / OWNER_FILE).read_text()) == {"owner": "ingest"}
    ingest_paths([p / "in"], ok, workers=1)  # its own output: replaced
    assert sorted(os.listdir(tmp_path)) == ["interim", "not-ours", "p"]


def test_case_ids_that_sanitise_alike_get_two_case_files(tmp_path: Path) -> None:
    from features_factories import SEC, T0, span_id, trace_id, write_raw, write_table
    from otlp_aiops.features.build import build_features
    from otlp_aiops.features.config import FeaturesConfig
    from otlp_aiops.features.store import load_cases

    interim, raw, out = tmp_path / "interim", tmp_path / "raw", tmp_path / "features"
    write_table(
        interim,
        "spans",
        [
            {
                "service_name": s,
                "trace_id": trace_id(t),
                "span_id": span_id(2 * t + (s == "b")),
                "kind": 2,
                "start_time": T0 + t * SEC,
                "end_time": T0 + t * SEC + 5_000_000,
                "duration_ns": 5_000_000,
            }
            for t in range(0, 120, 2)
            for s in ("a", "b")
        ],
    )
    write_raw(
        raw,
        [
            {
                "incident_id": i,
                "start_time": T0 + t * SEC,
                "end_time": T0 + (t + 10) * SEC,
                "root_cause_service": s,
            }
            for i, t, s in (("x/1", 40, "a"), ("x_1", 80, "b"))
        ],
    )
    build_features(interim, raw, out, FeaturesConfig(window="10s", before="20s", after="20s", margin=0))
    files = sorted(p.name for p in (out / "cases").iterdir())
    assert files == sorted([f"{file_stem('x/1')}.npz", "x_1.npz"]) and len(files) == 2
    cases = {c.case_id: c for c in load_cases(out)}
    assert sorted(cases) == ["x/1", "x_1"]
    assert cases["x/1"].root_cause_service == "a" and cases["x_1"].root_cause_service == "b"
    assert cases["x/1"].start_time != cases["x_1"].start_time
