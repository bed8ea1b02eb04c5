"""Wall time of the daily run per stage, on a MovieLens folder (default: ../shared/movielens/ml-latest-small).

    .venv/bin/python bench/daily_run.py [--dir DIR] [--ds 2026-11-20] [--runs 2]

Runs `python -m movielens.cli demo` (the same as `make demo`) on a fresh lake and Airflow home under
var/bench/, and prints total wall time, the dags-test time, and per-stage times from the run summary
(validation + routing per file, Spark start, bronze, silver, train).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=str(ROOT.parent / "shared" / "movielens" / "ml-latest-small"))
    parser.add_argument("--ds", default="2026-11-20")
    parser.add_argument("--runs", type=int, default=2, help="the first run is on an empty lake, later ones are reruns")
    args = parser.parse_args()
    work = ROOT / "var" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ, MOVIELENS_DIR=args.dir, MOVIELENS_LAKE_URL=(work / "lake").as_uri())
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "movielens.cli", "demo", "--ds", args.ds], env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            raise SystemExit(f"run {run} failed")
        summary = json.loads((work / "lake" / "reports" / f"ds={args.ds}" / "run_summary.json").read_text())
        per_file = {f: round(sum(t.values()), 2) for f, t in summary["timings_s"]["validate_and_route"].items()}
        wall_line = next((l for l in done.stdout.splitlines() if l.startswith("Wall time")), "")
        print(f"run {run}: total wall {wall:.1f} s | {wall_line}")
        print(f"  validate+route per file (s): {per_file}")
        print(f"  spark (s): {summary['timings_s']['spark']}")
        print(f"  metrics: {json.dumps(summary['metrics']['als_explicit'])}")


if __name__ == "__main__":
    main()
