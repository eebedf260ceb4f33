"""Time the one command that makes the `rnd` recipe's default datasets, and describe what it made.

Target (issue #12): at the default size (ExORL's 1M transitions, 1000 episodes per domain), generation takes at most
10 minutes per domain on 2 CPU cores. Runs ``python -m cfgrl_core.collect --recipe rnd --domain <d>`` once per domain
into an empty temporary root (so nothing is reused from a cache), then loads each dataset and reports transitions,
bytes on disk and the per-task return distribution (min / median / max / mean) for the `rnd` recipe and, for
comparison, the `td3_snapshots` recipe's default size. Prints a table and writes the figures as JSON.

Usage:  python benchmarks/data_generation.py [--workers 2] [--out cfgrl_core/assets/results/data/generation.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cfgrl_core.checkpoint import atomic_write_text
from cfgrl_core.collect import DEFAULT_SIZE, SIZES
from cfgrl_core.dataset import episode_files, episode_returns, load_dataset
from cfgrl_core.envs import DOMAIN_TASKS
from cfgrl_core.provenance import provenance

TARGET_S = 600.0


def generate(domain: str, recipe: str, root: Path, workers: int) -> dict:
    """Run the collector CLI for one domain into ``root``; wall time, episodes and bytes of what it wrote."""
    cmd = [sys.executable, "-m", "cfgrl_core.collect", "--recipe", recipe, "--domain", domain,
           "--workers", str(workers), "--root", str(root)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    files = episode_files(root, domain, recipe)
    return {"command": " ".join(["python", *cmd[1:-2]]), "wall_s": round(wall, 1), "episodes": len(files),
            "bytes": int(sum(f.stat().st_size for f in files))}


def return_table(domain: str, recipe: str, root: Path) -> dict:
    """Per task of the domain: min / median / max / mean episode return of the dataset, relabelled."""
    out = {}
    for task in DOMAIN_TASKS[domain]:
        data = load_dataset(root, domain, recipe, task, cache=False, progress=False)
        r = episode_returns(data)
        out[task] = {"transitions": int(len(data["rewards"])), "min": float(r.min()),
                     "median": float(np.median(r)), "max": float(r.max()), "mean": float(r.mean())}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--recipes", nargs="+", default=["rnd", "td3_snapshots"])
    p.add_argument("--out", default=None, help="write the figures here as JSON")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    figures = {"target_s_per_domain": TARGET_S, "workers": args.workers, "cpu_count": os.cpu_count(),
               "provenance": provenance(), "recipes": {}}
    print(f"| recipe | domain | episodes | wall | MB on disk | within {TARGET_S / 60:.0f} min |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            rows = figures["recipes"][recipe] = {"default_size": SIZES[DEFAULT_SIZE[recipe]], "domains": {}}
            for domain in DOMAIN_TASKS:
                g = generate(domain, recipe, Path(tmp), args.workers)
                g["returns"] = return_table(domain, recipe, Path(tmp))
                rows["domains"][domain] = g
                print(f"| {recipe} | {domain} | {g['episodes']} | {g['wall_s'] / 60:.1f} min | "
                      f"{g['bytes'] / 1e6:.0f} | {'yes' if g['wall_s'] <= TARGET_S else 'NO'} |")
    print("\n| recipe | task | transitions | min | median | max | mean |\n|---|---|---|---|---|---|---|")
    for recipe, rows in figures["recipes"].items():
        for domain, g in rows["domains"].items():
            for task, s in g["returns"].items():
                print(f"| {recipe} | {domain}-{task} | {s['transitions']} | {s['min']:.0f} | {s['median']:.0f} | "
                      f"{s['max']:.0f} | {s['mean']:.0f} |")
    if args.out:
        atomic_write_text(args.out, json.dumps(figures, indent=1))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
