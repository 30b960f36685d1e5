"""Compare the decoded pixels of every stylised and refined image of two result folders.

    python scripts/compare_results.py OLD/results NEW/results [--dirs stylized refined]

For a restructuring that must keep behaviour: run the sample workflow on the old and the new
commit, then compare. Images are matched by their path under each folder; provenance text
chunks (code version, config hash) may differ, pixels must not. Exits 1 on any difference or
on an image present on one side only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def compare(old: Path, new: Path, dirs: list[str]) -> list[str]:
    problems, n = [], 0
    for d in dirs:
        a = {p.relative_to(old) for p in (old / d).rglob("*.png")}
        b = {p.relative_to(new) for p in (new / d).rglob("*.png")}
        problems += [f"only in {old}: {p}" for p in sorted(a - b)] + [f"only in {new}: {p}" for p in sorted(b - a)]
        for rel in sorted(a & b):
            n += 1
            pa, pb = pixels(old / rel), pixels(new / rel)
            if pa.shape != pb.shape or not np.array_equal(pa, pb):
                diff = "shape" if pa.shape != pb.shape else f"max |diff| {np.abs(pa.astype(int) - pb).max()}"
                problems.append(f"pixels differ ({diff}): {rel}")
    print(f"compared {n} images under {', '.join(dirs)}: {len(problems)} problems")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--dirs", nargs="+", default=["stylized", "refined"])
    args = ap.parse_args()
    problems = compare(args.old, args.new, args.dirs)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
