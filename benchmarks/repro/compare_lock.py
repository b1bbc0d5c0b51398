"""Which pipeline outputs two runs of `dvc repro` produced alike: compares the `outs` hashes of two
dvc.lock files (e.g. the committed one and a fresh clone's after `dvc repro`).

    python benchmarks/repro/compare_lock.py OLD_DVC_LOCK NEW_DVC_LOCK

Prints how many outputs are identical, which differ, and which exist in only one; exits 1 when any
output differs or is missing from one side."""

from __future__ import annotations

import sys

import yaml


def outs(path: str) -> dict[str, str | None]:
    with open(path) as f:
        stages = yaml.safe_load(f)["stages"]
    return {o["path"]: o.get("md5") for st in stages.values() for o in st.get("outs", [])}


def main(old_path: str, new_path: str) -> int:
    old, new = outs(old_path), outs(new_path)
    same = [k for k in old if k in new and old[k] == new[k]]
    differ = [k for k in old if k in new and old[k] != new[k]]
    only_old, only_new = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    print(f"same {len(same)}, differ {len(differ)}, only old {len(only_old)}, only new {len(only_new)}")
    for tag, keys in (("DIFF", differ), ("OLD ", only_old), ("NEW ", only_new)):
        for k in keys:
            print(f"  {tag} {k}")
    return 1 if differ or only_old or only_new else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
