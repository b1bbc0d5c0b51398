"""What every benchmark records about where it ran: CPU, Python, library versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def machine_info(**libraries: Any) -> dict[str, Any]:
    """The machine, Python, protobuf and its backend, the git commit (and whether src/ has
    uncommitted changes), plus ``name=module`` versions of further libraries."""
    import google.protobuf
    from google.protobuf.internal import api_implementation

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "protobuf": google.protobuf.__version__,
        "protobuf_backend": api_implementation.Type(),
        **{name: module.__version__ for name, module in libraries.items()},
        "git_commit": _git("rev-parse", "--short", "HEAD") or None,
        "src_dirty": bool(_git("status", "--porcelain", "src")),
    }
