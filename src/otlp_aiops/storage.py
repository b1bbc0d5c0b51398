"""Inputs and outputs in object storage (``s3://bucket/prefix``) as well as local paths, through
``pyarrow.fs``.

A stage works on local folders; this module moves them in and out:

- :func:`stage_in` copies a remote folder to a local one (a local path is returned as it is);
- :func:`publish` uploads a finished local folder to a remote prefix and *commits* it by writing
  ``_SUCCESS`` last: a JSON manifest of every file with its size and sha256. Object stores have no
  atomic rename, so the manifest is the commit: it is removed first, the files are uploaded, files of
  an earlier output that the new one lacks are deleted, and the manifest is written at the end. A
  reader (:func:`stage_in`) refuses a prefix without a manifest or whose files disagree with it, so an
  interrupted upload is never read as a table;
- :func:`remote_io` wraps a stage function: remote inputs are staged in, the output is built in a
  local temporary folder and published.

The endpoint of an S3-compatible server is taken from ``AWS_ENDPOINT_URL`` (the tests start one on
127.0.0.1); credentials and region from the usual AWS variables.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

MANIFEST = "_SUCCESS"
SCHEMES = ("s3",)


class StorageError(OSError):
    """A remote location that cannot be read or written, or an output that was never committed."""


def is_remote(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and urlparse(location).scheme in SCHEMES


def _fs(uri: str) -> tuple[Any, str]:
    """The ``pyarrow.fs`` file system of ``uri`` and the path inside it (``bucket/prefix``)."""
    from pyarrow import fs

    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"{uri}: not an s3://bucket/prefix URI")
    kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        ep = urlparse(endpoint)
        kwargs.update(endpoint_override=ep.netloc or ep.path, scheme=ep.scheme or "http")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        kwargs["region"] = region
    return fs.S3FileSystem(**kwargs), f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def publish(local: Path | str, uri: str) -> dict[str, Any]:
    """Upload the finished folder ``local`` to ``uri`` and commit it (the manifest last); returns the
    manifest. Files under ``uri`` that the new output lacks are deleted before the commit."""
    from pyarrow import fs

    local = Path(local)
    filesystem, base = _fs(uri)
    files = _local_files(local)
    manifest = {"files": {rel: {"size": p.stat().st_size, "sha256": _sha256(p)} for rel, p in files.items()}}
    try:
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_file(f"{base}/{MANIFEST}")  # from here on, readers see no committed output
        for rel, p in files.items():
            fs.copy_files(str(p), f"{base}/{rel}", destination_filesystem=filesystem)
        for info in filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True)):
            rel = info.path[len(base) + 1 :]
            if info.type == fs.FileType.File and rel not in files and rel != MANIFEST:
                filesystem.delete_file(info.path)
        with filesystem.open_output_stream(f"{base}/{MANIFEST}") as out:
            out.write(json.dumps(manifest, indent=1, sort_keys=True).encode())
    except OSError as e:
        raise StorageError(f"{uri}: cannot publish {local}: {e}") from e
    return manifest


def stage_in(location: str | Path, local: Path | str) -> Path:
    """A local folder holding ``location``: the path itself when it is local, else a copy of the
    committed remote output in ``local`` (checked against its manifest, sizes and digests)."""
    if not is_remote(location):
        return Path(location)
    from pyarrow import fs

    uri = str(location)
    filesystem, base = _fs(uri)
    local = Path(local)
    try:
        with filesystem.open_input_stream(f"{base}/{MANIFEST}") as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        # not an output of ours: a folder of input files (e.g. an OTLP export) is read as it is
        infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        files = sorted(i.path for i in infos if i.type == fs.FileType.File)
        if not files:
            raise StorageError(f"{uri}: nothing there") from None
        for path in files:
            dest = local / path[len(base) + 1 :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.copy_files(path, str(dest), source_filesystem=filesystem)
        return local
    except OSError as e:
        raise StorageError(f"{uri}: cannot read: {e}") from e
    local.mkdir(parents=True, exist_ok=True)
    for rel, meta in manifest["files"].items():
        dest = local / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.copy_files(f"{base}/{rel}", str(dest), source_filesystem=filesystem)
        if dest.stat().st_size != meta["size"] or _sha256(dest) != meta["sha256"]:
            raise StorageError(
                f"{uri}/{rel}: differs from the manifest (an upload in progress or a damaged copy)"
            )
    return local


def remote_io(
    fn: Callable[..., Any], inputs: Sequence[str | Path], out: str | Path, *args: Any, **kwargs: Any
) -> Any:
    """``fn(local_inputs, local_out, *args, **kwargs)`` where remote inputs are staged in and a remote
    ``out`` is built locally and published when ``fn`` returns; with only local paths it is ``fn``
    itself. On an error nothing is published: the remote output keeps its previous commit."""
    with _scratch(any(is_remote(p) for p in [*inputs, out])) as tmp:
        local_inputs = [stage_in(p, tmp / f"in-{i}") for i, p in enumerate(inputs)]
        local_out = tmp / "out" if is_remote(out) else Path(out)
        result = fn(local_inputs, local_out, *args, **kwargs)
        if is_remote(out):
            publish(local_out, str(out))
        return result


def staged_labels(local_inputs: Sequence[Path], inputs: Sequence[str | Path]) -> dict[str, str]:
    """Each staged local input folder -> the remote location it holds (for lineage columns and reports)."""
    return {str(loc): str(src) for loc, src in zip(local_inputs, inputs, strict=True) if is_remote(src)}


@contextlib.contextmanager
def _scratch(needed: bool) -> Iterator[Path]:
    if not needed:
        yield Path(".")
        return
    tmp = Path(tempfile.mkdtemp(prefix="otlp-aiops-remote-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
