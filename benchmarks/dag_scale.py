"""DAG build time at scale: dry runs over a synthetic collection (files are never read).

    python benchmarks/dag_scale.py --photos 100000 --styles 3 --methods reinhard mkl
    python benchmarks/dag_scale.py --photos 100000 --peer 936cce9 --rounds 6
    python benchmarks/dag_scale.py --photos 100000 --scope folder --peer 1d120de

Prints the time of a cold dry run (listings written), a warm one (nothing changed on
disk), and the shards per stage that adding one photo schedules. Target (issue 2):
warm dry run <= 5 s for 100k photos x 3 styles x 2 methods; one shard per stage.

``--peer COMMIT`` also times that commit's Snakefile (a temporary git worktree) on the same
collection, alternating with this checkout's, and prints the ratio: this machine's speed wanders
by up to 1.6x within minutes, so only a same-run ratio says whether a change made it faster.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def dry_run(workdir: Path, cfg: Path, repo: Path = REPO) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--cores", "1",
           "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile", str(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return elapsed, proc.stdout + proc.stderr


def job_count(out: str) -> int:
    m = re.search(r"^total\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--styles", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["reinhard", "mkl"])
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--folder-size", type=int, default=1000, help="photos per folder of the synthetic collection")
    ap.add_argument("--scope", default="photo", choices=["photo", "folder", "collection"],
                    help="stylize.scope (folder: grade_sample and grade_fit jobs; the peer runs at its default)")
    ap.add_argument("--peer", help="a git commit to time alternately on the same collection")
    ap.add_argument("--rounds", type=int, default=4, help="alternating warm runs with --peer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        content, styles = tmp / "photos", tmp / "styles"
        for i in range(args.photos):
            d = content / f"d{i // args.folder_size:05d}"
            if i % args.folder_size == 0:
                d.mkdir(parents=True)
            (d / f"IMG_{i:06d}.jpg").touch()
        styles.mkdir()
        for s in range(args.styles):
            (styles / f"style_{s}.jpg").touch()
        cfg, peer_cfg = tmp / "config.yaml", tmp / "peer_config.yaml"
        base = {"content_dir": str(content), "style_dir": str(styles), "ingest": {"shard_size": args.shard_size},
                "stylize": {"methods": args.methods}}
        peer_cfg.write_text(yaml.safe_dump(base))  # a peer from before stylize.scope knows no such key
        if args.scope != "photo":
            base["stylize"]["scope"] = args.scope
        cfg.write_text(yaml.safe_dump(base))
        cold, out = dry_run(tmp, cfg)
        warm, out = dry_run(tmp, cfg)
        warm2, _ = dry_run(tmp, cfg)
        n_shards = len(list((tmp / "results" / "ingest" / "lists" / "content").glob("*.csv")))
        print(f"photos={args.photos} styles={args.styles} methods={len(args.methods)} "
              f"shard_size={args.shard_size} shards={n_shards} jobs={job_count(out)}")
        print(f"dry run, cold (listings written): {cold:.2f} s")
        print(f"dry run, warm (nothing changed):  {min(warm, warm2):.2f} s")
        (content / "d00000" / "IMG_new.jpg").touch()
        # Pretend everything else is done: a real run would have produced the outputs; here
        # we count the shards the *new listing* touches, which is what reruns.
        before = {p.name: p.stat().st_mtime_ns for p in (tmp / "results/ingest/lists/content").glob("*.csv")}
        dry_run(tmp, cfg)
        after = {p.name: p.stat().st_mtime_ns for p in (tmp / "results/ingest/lists/content").glob("*.csv")}
        changed = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
        print(f"adding one photo rewrote {len(changed)} of {len(after)} shard listings: {changed}")
        if args.peer:
            compare_with_peer(args.peer, args.rounds, tmp, cfg, peer_cfg)


def compare_with_peer(commit: str, rounds: int, workdir: Path, cfg: Path, peer_cfg: Path) -> None:
    """Dry runs of ``commit`` (on ``peer_cfg``) and of this checkout, alternating, on the same
    collection. Where the two shard the collection differently (folder-local shards came after
    the path-only rule), each run rewrites the listings the other wrote, in both alike."""
    peer = workdir / "peer"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(peer), commit],
                   check=True, capture_output=True)
    try:
        times: dict[str, list[float]] = {"peer": [], "this": []}
        for _ in range(rounds):  # each run leaves the listings as the other expects (same shard rule)
            times["peer"].append(dry_run(workdir, peer_cfg, peer)[0])
            times["this"].append(dry_run(workdir, cfg)[0])
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(peer)], capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    for k in ("peer", "this"):
        print(f"{k} ({commit if k == 'peer' else 'this checkout'}): warm dry runs "
              + " ".join(f"{t:.2f}" for t in times[k]) + f" s; median {med[k]:.2f} s, min {low[k]:.2f} s")
    print(f"this / peer: median {med['this'] / med['peer']:.2f}x, min {low['this'] / low['peer']:.2f}x")


if __name__ == "__main__":
    main()
