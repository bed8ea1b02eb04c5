"""The daily run end to end on a MovieLens folder: wall time per stage, peak memory, every model's metrics.

    .venv/bin/python bench/daily_run.py [--dir DIR] [--ds 2026-11-20] [--runs 2] [--next-days 1]

Runs `python -m devenv demo` (the same as `make demo`) on a fresh lake and Airflow home under
var/bench/, and prints total wall time, the dags-test time, per-stage times from the run summary
(validation + routing per file, Spark start, bronze, silver, gold, train and its steps, similar), the
peak resident memory of the whole process tree (Airflow, the Spark JVM, Python workers), and a table of
every metric of every model next to the public reference figures for MovieLens 100k.

``--next-days K`` then runs the K following dates on the same lake (the same files land again for each),
as the daily schedule would: with the default ``MOVIELENS_TUNE_EVERY_DAYS`` they reuse the parameters the
first date's tuning chose instead of tuning (each run prints where its parameters came from).

The default folder is ../shared/movielens/ml-latest-small (quality and per-stage times). For the scale
benchmark, generate an ML-25M-shaped folder first and point --dir at it:

    .venv/bin/python -m movielens.ingest.synthetic --size 25m --out var/synthetic-25m
    MOVIELENS_SPARK_DRIVER_MEMORY=10g .venv/bin/python bench/daily_run.py --dir var/synthetic-25m --runs 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: recommenders-team/recommenders, MovieLens 100k, same protocol (stratified 75/25, seed 42, k = 10).
REFERENCE = [
    ("Spark ALS (reference)", 0.965, None, 0.044, None),
    ("Surprise SVD (reference)", 0.939, None, None, None),
    ("SAR (reference)", None, None, 0.382, None),
    ("BPR (reference)", None, None, 0.442, None),
    ("BiVAE (reference)", None, None, 0.475, 0.412),
]
COLUMNS = ["rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "hit_rate_at_10", "catalog_coverage"]


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def metrics_table(metrics: dict) -> str:
    def cell(value):
        return "" if value is None else f"{value:.4f}"

    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(cell(values.get(c)) for c in COLUMNS) + " |")
    for name, rmse, mae, ndcg, precision in REFERENCE:
        row = {"rmse": rmse, "mae": mae, "ndcg_at_10": ndcg, "precision_at_10": precision}
        lines.append(f"| {name} | " + " | ".join(cell(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=str(ROOT.parent / "shared" / "movielens" / "ml-latest-small"))
    parser.add_argument("--ds", default="2026-11-20")
    parser.add_argument("--runs", type=int, default=2, help="the first run is on an empty lake, later ones are reruns")
    parser.add_argument("--next-days", type=int, default=0,
                        help="then run this many following dates on the same lake (they reuse the tuned parameters)")
    args = parser.parse_args()
    work = ROOT / "var" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ, MOVIELENS_DIR=args.dir, MOVIELENS_LAKE_URL=(work / "lake").as_uri())
    first = dt.date.fromisoformat(args.ds)
    dates = [args.ds] * args.runs + [(first + dt.timedelta(days=n)).isoformat() for n in range(1, args.next_days + 1)]
    for run, ds in enumerate(dates, start=1):
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "devenv", "demo", "--ds", ds], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0
        out_chunks: list[str] = []
        import threading

        reader = threading.Thread(target=lambda: out_chunks.append(proc.communicate()))
        reader.start()
        while reader.is_alive():
            peak = max(peak, tree_rss(proc.pid))
            reader.join(0.5)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, *out_chunks[0])
        wall = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            raise SystemExit(f"run {run} failed")
        summary = json.loads((work / "lake" / "reports" / f"ds={ds}" / "run_summary.json").read_text())
        per_file = {f: round(sum(t.values()), 2) for f, t in summary["timings_s"]["validate_and_route"].items()}
        wall_line = next((line for line in done.stdout.splitlines() if line.startswith("Wall time")), "")
        spark_report = json.loads((work / "lake" / "reports" / f"ds={ds}" / "spark_job.json").read_text())
        print(f"run {run} (ds={ds}): total wall {wall:.1f} s, peak memory {peak / 2**30:.2f} GiB | {wall_line}")
        tuning = summary.get("tuning", {})
        print(f"  model parameters: {tuning.get('action')} {tuning.get('source_ds') or ''}".rstrip())
        print(f"  validate+route per file (s): {per_file}")
        print(f"  spark (s): {summary['timings_s']['spark']}")
        print(f"  train steps (s): {spark_report.get('train_timings_s')}")
        print(f"  counts: {json.dumps(summary.get('counts', {}).get('spark', spark_report.get('counts')))}")
        for name, model in summary["models"].items():
            print(f"  {name} params: {json.dumps(model['params'], sort_keys=True)}")
        print(metrics_table(summary["metrics"]))


if __name__ == "__main__":
    main()
