"""Safe outputs, in one place: atomic file writes, deterministic ``.npz`` files, and the claim on a
stage's output folder (refuse what is not ours, lock it, clean up after crashes, swap in atomically).

Every stage writes its folder through :func:`claim_output`::

    with claim_output(out, inputs=[src], owner="ingest", known_files=["ingest_report.json"]) as tmp:
        ...  # write everything into tmp; on success tmp replaces out, on error it is removed

and every single file through :func:`atomic_write_bytes` / :func:`atomic_write_text` /
:func:`atomic_write_with`. Names that come from data become file names through :func:`file_stem`
(collision-free); names that become folders (datasets) are checked by :func:`check_name`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

OWNER_FILE = ".otlp-aiops-owner.json"
_TMP_RE = re.compile(r"\.tmp-(\d+)$")
_OLD_RE = re.compile(r"\.old-(\d+)$")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_HASHED = re.compile(r"-[0-9a-f]{10}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class OutputError(OSError):
    """An output that may not be written (the message is one line and names the path and the fix).
    An ``OSError``, so every stage that reports "cannot write" errors in one line reports these too."""


# --------------------------------------------------------------------------------------------------
# single files
# --------------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place; on any
    error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes | Iterable[bytes]) -> Path:
    """Write ``data`` (bytes, or an iterable of chunks) to ``path`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)

    return atomic_write_with(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | os.PathLike, obj: Any, *, sort_keys: bool = True, default: Any = None
) -> Path:
    """Write ``obj`` as indented JSON (keys sorted by default, so the bytes depend only on the data)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=default) + "\n")


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """The bytes of an uncompressed ``.npz`` holding ``arrays`` (in the given order), with fixed zip
    timestamps: ``numpy.savez`` stamps every entry with the wall clock, so its output changes from
    one run to the next even when the arrays do not. ``numpy.load`` reads the result."""
    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """:func:`npz_bytes` written atomically to ``path`` (same bytes for the same arrays)."""
    return atomic_write_bytes(path, npz_bytes(arrays))


# --------------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------------


def check_name(name: str, what: str = "dataset") -> str:
    """``name`` if it can be one path component under a stage's folder (``data/features/<name>``);
    else an :class:`OutputError`: empty, absolute, ``/``, ``\\``, ``..``, hidden, or other characters
    than letters, digits and ``._+-``."""
    if not isinstance(name, str) or not name:
        raise OutputError(f"{what} name {name!r}: empty")
    if not _NAME_RE.match(name) or ".." in name:
        raise OutputError(
            f"{what} name {name!r}: not a plain name (use letters, digits and ._+-, starting with a letter "
            "or digit; no '/', '..' or absolute paths)"
        )
    return name


def file_stem(key: str) -> str:
    """A file-name stem for ``key`` (a case id, a service name) that never collides with another key's:
    a key that is already a safe name is kept as it is; any other (``x/1``, ``.hidden``, a name that
    already ends like a hash suffix) is sanitised and gets ``-`` and 10 hex digits of its SHA-256, so
    ``x/1`` -> ``x_1-<hash>`` and ``x_1`` -> ``x_1`` stay apart."""
    key = str(key)
    clean = _SAFE_CHARS.sub("_", key)
    if clean == key and key and not key.startswith(".") and not _HASHED.search(key) and len(key) <= 120:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{clean.lstrip('.')[:100] or '_'}-{digest}"


# --------------------------------------------------------------------------------------------------
# output folders
# --------------------------------------------------------------------------------------------------


def _real(p: Path) -> Path:
    """The absolute path with every symlink that exists resolved (a loop is an error, not a hang)."""
    try:
        return Path(os.path.realpath(p, strict=False))
    except (OSError, RuntimeError) as e:
        raise OutputError(f"{p}: cannot resolve the path: {e}") from None


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_output_vs_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output folder that equals, contains or lies inside one of the inputs (compared after
    resolving symlinks): replacing it would delete the inputs or write into them."""
    out_p = Path(out)
    real_out = _real(out_p)
    for inp in inputs:
        real_in = _real(Path(inp))
        if real_out == real_in:
            raise OutputError(f"{out_p}: the output is the input {inp}; choose another output folder")
        if _inside(real_in, real_out):
            raise OutputError(
                f"{out_p}: the output contains the input {inp}; choose an output folder outside it"
            )
        if _inside(real_out, real_in):
            raise OutputError(
                f"{out_p}: the output lies inside the input {inp}; choose an output folder outside it"
            )


def _is_ours(out: Path, owner: str, known_files: Sequence[str]) -> bool:
    marker = out / OWNER_FILE
    if marker.is_file():
        try:
            return json.loads(marker.read_text()).get("owner") == owner
        except (OSError, ValueError, AttributeError):
            return False
    return any((out / f).is_file() for f in known_files)


def check_replaceable(out: str | os.PathLike, owner: str, known_files: Sequence[str] = ()) -> None:
    """Refuse to replace ``out`` unless it is missing, an empty folder, or a folder this ``owner``
    wrote (it holds :data:`OWNER_FILE` naming the owner, or one of ``known_files``)."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise OutputError(f"{out}: a dangling symlink; remove it or choose another output folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another output")
    try:
        empty = not any(out.iterdir())
    except OSError as e:
        raise OutputError(f"{out}: cannot read the output folder: {e}") from None
    if empty or _is_ours(out, owner, known_files):
        return
    what = " or ".join([f"{OWNER_FILE} naming {owner}", *known_files])
    raise OutputError(
        f"{out}: not empty and not written by {owner} (it holds no {what}); refusing to replace it: "
        "choose an empty or new output folder"
    )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover(out: str | os.PathLike) -> list[str]:
    """Clean up after a crashed writer of ``out`` (call it holding the lock): remove temporary
    siblings ``.OUT.tmp-PID`` of dead processes; if ``out`` is missing, restore the newest
    ``.OUT.old-PID`` (a crash between the two renames of a swap); remove other stale ``.old-`` copies.
    Returns what it did, one line each."""
    out = Path(out)
    parent = out.parent
    done: list[str] = []
    if not parent.is_dir():
        return done
    prefix = f".{out.name}."
    olds: list[Path] = []
    for p in sorted(parent.iterdir()):
        if not p.name.startswith(prefix):
            continue
        rest = p.name[len(out.name) + 1 :]
        m_tmp, m_old = _TMP_RE.fullmatch(rest), _OLD_RE.fullmatch(rest)
        if m_tmp and not _pid_alive(int(m_tmp.group(1))):
            _remove(p)
            done.append(f"removed the stale temporary folder {p}")
        elif m_old and not _pid_alive(int(m_old.group(1))):
            olds.append(p)
    if olds and not os.path.lexists(out):
        newest = max(olds, key=lambda p: p.lstat().st_mtime)
        os.replace(newest, out)
        olds.remove(newest)
        done.append(f"restored {out} from {newest.name} (an earlier run stopped between two renames)")
    for p in olds:
        _remove(p)
        done.append(f"removed the stale previous output {p}")
    return done


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """An exclusive lock on writing ``out``: ``fcntl.flock`` on the sibling ``.OUT.lock``, taken
    without waiting (a second writer fails at once with an :class:`OutputError`). The lock file is
    removed on release, so nothing is left beside the output."""
    out = Path(out)
    lock = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"{out}: cannot create the lock file {lock}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"{out}: another run is writing this output (lock {lock} is held); wait for it to finish "
                    "or choose another output"
                ) from None
            raise OutputError(f"{out}: cannot lock {lock}: {e.strerror}") from None
        # the holder before us may have removed the file between our open and our flock: retry on
        # the file that is there now, so two writers never hold locks on two different files
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the folder ``tmp`` with two renames (out -> .OUT.old-PID, tmp -> out); a
    crash between them is repaired by :func:`recover` on the next run."""
    old = None
    if os.path.lexists(out):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if os.path.lexists(old):
            _remove(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def claim_output(
    out: str | os.PathLike,
    *,
    owner: str,
    inputs: Iterable[str | os.PathLike] = (),
    known_files: Sequence[str] = (),
    marker: bool = True,
) -> Iterator[Path]:
    """Claim the output folder ``out`` for the stage ``owner`` and yield a temporary sibling to write
    it in; when the block ends without an error, the temporary folder replaces ``out`` atomically.

    Refuses (:class:`OutputError`, before anything is written): an ``out`` that equals, contains or
    lies inside an input; one that is not empty and not ``owner``'s (:func:`check_replaceable`); one
    that another run is writing (:func:`output_lock`). Cleans up after crashed runs first
    (:func:`recover`). ``marker``: write :data:`OWNER_FILE` (``{"owner": owner}``) into the output."""
    out = Path(out)
    inputs = list(inputs)
    check_output_vs_inputs(out, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the parent folder: {e.strerror}") from None
    with output_lock(out):
        recover(out)
        check_replaceable(out, owner, known_files)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        try:
            if os.path.lexists(tmp):
                _remove(tmp)
            tmp.mkdir()
        except OSError as e:
            raise OutputError(f"{out}: cannot write the output: {e}") from None
        try:
            if marker:
                (tmp / OWNER_FILE).write_text(json.dumps({"owner": owner}) + "\n")
            yield tmp
            try:
                swap_into_place(tmp, out)
            except OSError as e:
                raise OutputError(f"{out}: cannot move the finished output into place: {e}") from None
        except BaseException:
            _remove(tmp)
            raise
