"""The registry of known public failure datasets (``registry.yaml`` beside this module): what each is,
where it is published (repository at a pinned commit), and the sha256 of every file, so a copy —
downloaded or local — is verified before an adapter converts it.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"


class RegistryError(Exception):
    """Unknown dataset, or a copy that does not match the registry (names the file)."""


class ChecksumError(RegistryError):
    """A file's sha256 differs from the registry's, or a registered file is missing."""


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    adapter: str
    description: str
    licence: str
    signals: tuple[str, ...]
    incidents: int
    repository: str  # owner/name on GitHub
    commit: str
    files: dict[str, str] = field(default_factory=dict)  # path (upstream and local) -> sha256
    sizes: dict[str, int] = field(default_factory=dict)
    url_template: str = RAW_URL

    @property
    def size_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repository}/tree/{self.commit}"

    def file_url(self, path: str) -> str:
        return self.url_template.format(repository=self.repository, commit=self.commit, path=path)


def load_registry(path: Path | None = None) -> dict[str, DatasetEntry]:
    import yaml

    raw = yaml.safe_load(Path(path or REGISTRY_FILE).read_text())
    out = {}
    for name, d in (raw.get("datasets") or {}).items():
        files = {k: v["sha256"] for k, v in (d.get("files") or {}).items()}
        sizes = {k: int(v["bytes"]) for k, v in (d.get("files") or {}).items()}
        out[name] = DatasetEntry(
            name=name,
            adapter=d["adapter"],
            description=d["description"],
            licence=d["licence"],
            signals=tuple(d["signals"]),
            incidents=int(d["incidents"]),
            repository=d["repository"],
            commit=str(d["commit"]),
            files=files,
            sizes=sizes,
            url_template=d.get("url_template", RAW_URL),
        )
    return out


def get_entry(name: str, registry: dict[str, DatasetEntry] | None = None) -> DatasetEntry:
    reg = registry if registry is not None else load_registry()
    if name not in reg:
        raise RegistryError(f"unknown dataset {name!r}; known: {', '.join(sorted(reg))}")
    return reg[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_folder(entry: DatasetEntry, root: Path) -> Path:
    """The copy of ``entry`` under ``root``: ``root/<name>`` if present, else ``root`` itself."""
    root = Path(root)
    return root / entry.name if (root / entry.name).is_dir() else root


def verify(entry: DatasetEntry, folder: Path) -> dict[str, Any]:
    """Check every registered file of ``entry`` in ``folder``; raise :class:`ChecksumError` naming
    the first missing or differing files. Returns counts (files checked, bytes, unregistered files)."""
    folder = Path(folder)
    missing, wrong = [], []
    checked = size = 0
    for rel, digest in sorted(entry.files.items()):
        p = folder / rel
        if not p.is_file():
            missing.append(rel)
            continue
        got = sha256_file(p)
        if got != digest:
            wrong.append(f"{p}: sha256 {got} != registered {digest}")
        checked += 1
        size += p.stat().st_size
    if missing or wrong:
        parts = [*wrong[:5], *(f"{folder / m}: missing" for m in missing[:5])]
        more = len(missing) + len(wrong) - len(parts)
        raise ChecksumError(
            f"{entry.name}: the copy in {folder} does not match the registry ({len(wrong)} differing, "
            f"{len(missing)} missing): " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
        )
    extra = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in entry.files
    )
    return {"files": checked, "bytes": size, "unregistered_files": extra}


def fetch(
    name: str,
    out: Path,
    *,
    from_dir: Path | None = None,
    registry: dict[str, DatasetEntry] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Put a verified copy of dataset ``name`` in ``out``: downloaded file by file from its pinned
    commit, or copied from a local copy (``from_dir/<name>`` or ``from_dir``). Nothing is left in
    ``out`` unless every file matches its checksum."""
    entry = get_entry(name, registry)
    out = Path(out)
    from otlp_aiops.outputs import OutputError, claim_output

    src = dataset_folder(entry, Path(from_dir)) if from_dir is not None else None
    if src is not None:
        verify(entry, src)  # a copy that does not match is named before anything else
    inputs = [src] if src is not None else []
    try:
        # refuses an `out` that overlaps the local copy, or holds other files than a copy of this
        # dataset (none of its registered files); locked; cleaned after a crash; swapped in atomically
        with claim_output(
            out, owner="fetch", inputs=inputs, known_files=tuple(entry.files), marker=False
        ) as tmp:
            if src is not None:
                for rel in entry.files:
                    dst = tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src / rel, dst)
            else:
                for rel, digest in sorted(entry.files.items()):
                    dst = tmp / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    url = entry.file_url(rel)
                    try:
                        with urllib.request.urlopen(url, timeout=timeout) as r, open(dst, "wb") as f:
                            shutil.copyfileobj(r, f)
                    except OSError as e:
                        raise RegistryError(
                            f"{name}: cannot download {url}: {e} (use --from DIR with a local copy)"
                        ) from e
                    got = sha256_file(dst)
                    if got != digest:
                        raise ChecksumError(
                            f"{name}: {url}: sha256 {got} != registered {digest} (a Git LFS pointer or a "
                            "changed file?)"
                        )
            report = verify(entry, tmp)
    except OutputError as e:
        raise RegistryError(str(e)) from None
    return {"name": name, "out": str(out), "source": str(from_dir) if from_dir else entry.url, **report}


def build_entry_files(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under ``folder`` (to write a registry entry)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
