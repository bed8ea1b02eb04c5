"""Validation throughput on a big ratings.csv: ``validate_file`` (streaming) vs whole-file GX on pandas.

    .venv/bin/python bench/validate_ratings.py [--rows 25000000] [--compare-rows N] [--dir var/bench/validate]

1. Writes ``ratings.csv`` with N rows (default 25 M, like ml-25m) under ``--dir``, with the project's
   generator (``movielens.ingest.synthetic``) when it is importable, else with the small numpy writer below
   (``--generator numpy`` forces it); an existing file of the same size and generator is reused.
2. Runs each measurement in its own subprocess, so each peak RSS (``ru_maxrss``) is that method's own:
   - streaming: ``movielens.validation.validate_file(path, "ratings", run_date)``;
   - pandas: ``pd.read_csv`` of the whole file + GX Core validating the same suite
     (``expectations/ratings.json``, without the cross-file ``movie_id_known``) on that DataFrame.
     ``--compare-rows N`` caps it to the first N rows (said so in the output) when the whole file would
     not fit in memory or time.
   Rows/s are rows / wall seconds of the validation call; imports (GX takes seconds) and GX context
   creation are timed apart and reported as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "plugins"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

HEADER = "userId,movieId,rating,timestamp\n"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- data ------------------------------------------------------------------------------------------


def write_numpy(path: Path, rows: int, seed: int = 42, chunk: int = 1_000_000) -> None:
    """A plain MovieLens-shaped ratings.csv: users in order, distinct movies per user, half stars."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    movies = 62_000
    per_user = np.clip(rng.lognormal(4.2, 1.0, size=rows // 20 + 1).astype(np.int64), 20, 5_000)
    ends = np.cumsum(per_user)
    users = int(np.searchsorted(ends, rows)) + 1
    per_user = per_user[:users]
    per_user[-1] -= int(ends[users - 1] - rows)
    stars = np.array([f"{i / 2:.1f}" for i in range(11)], dtype=object)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(HEADER.encode())
        user_of_row = np.repeat(np.arange(1, users + 1, dtype=np.int64), per_user)
        start_of_user = np.concatenate([[0], np.cumsum(per_user)[:-1]])
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            u = user_of_row[lo:hi]
            pos = np.arange(lo, hi) - start_of_user[u - 1]
            offset = (u * 7_919) % movies
            m = (offset + pos * 104_729) % movies + 1  # distinct per user (104729 is prime to 62000)
            r = stars[rng.integers(1, 11, hi - lo)]
            ts = rng.integers(820_454_400, 1_700_000_000, hi - lo)  # 1996 .. 2023
            table = pa.table({"userId": u, "movieId": m, "rating": pa.array(r, pa.string()), "timestamp": ts})
            pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
    os.replace(tmp, path)


def make_file(directory: Path, rows: int, generator: str) -> tuple[Path, str]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ratings.csv"
    meta_path = directory / "ratings.meta.json"
    if generator == "auto":
        try:
            import movielens.ingest.synthetic  # noqa: F401  (is the project's generator there?)

            generator = "synthetic"
        except Exception:  # noqa: BLE001 - the project's generator is optional here
            generator = "numpy"
    wanted = {"rows": rows, "generator": generator}
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == wanted:
        return path, generator
    started = time.monotonic()
    if generator == "synthetic":
        from movielens.ingest import synthetic

        presets = {r: name for name, (_, _, r) in synthetic.SIZES.items()}
        if rows in presets:
            synthetic.generate_size(directory, presets[rows])
        else:
            users = max(1, rows // 154)
            synthetic.generate(directory, users=users, movies=max(200, min(62_000, rows // 400)), ratings=rows)
    else:
        write_numpy(path, rows)
    meta_path.write_text(json.dumps(wanted))
    print(f"wrote {path} ({rows:,} rows, {generator} generator) in {time.monotonic() - started:.1f} s", flush=True)
    return path, generator


# --- measurements (each in its own process) --------------------------------------------------------


def measure_streaming(path: Path, run_date: dt.date) -> dict:
    t0 = time.perf_counter()
    from movielens.validation import validate_file
    from movielens.validation.suites import gx_environment

    gx_environment()
    t1 = time.perf_counter()
    outcome = validate_file(path, "ratings", run_date)
    t2 = time.perf_counter()
    return {
        "rows": outcome.rows, "passed": outcome.passed, "checks": outcome.checks,
        "seconds": t2 - t1, "import_seconds": t1 - t0, "peak_rss_mb": peak_rss_mb(),
        "gx_rows": (outcome.gx_summary or {}).get("gx_rows"),
    }


def measure_pandas(path: Path, run_date: dt.date, rows: int | None) -> dict:
    t0 = time.perf_counter()
    import pandas as pd

    from movielens.validation.suites import gx_environment, gx_suite, load_spec, max_timestamp_for

    _, _, batch_definition = gx_environment()
    suite = gx_suite(load_spec("ratings"), ("movie_id_known",))
    t1 = time.perf_counter()
    frame = pd.read_csv(path, nrows=rows)
    t2 = time.perf_counter()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY", expectation_parameters={"max_timestamp": max_timestamp_for(run_date)})
    t3 = time.perf_counter()
    failed = [(r.expectation_config.meta or {}).get("check") for r in result.results if not r.success]
    return {
        "rows": len(frame), "passed": bool(result.success), "checks": failed,
        "seconds": t3 - t1, "read_seconds": t2 - t1, "gx_seconds": t3 - t2,
        "import_seconds": t1 - t0, "peak_rss_mb": peak_rss_mb(),
    }


def run_child(args: list[str], timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--compare-rows", type=int, default=None,
                        help="cap the pandas+GX side to the first N rows (default: the whole file)")
    parser.add_argument("--skip-compare", action="store_true", help="measure the streaming validation only")
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench" / "validate")
    parser.add_argument("--generator", choices=("auto", "synthetic", "numpy"), default="auto")
    parser.add_argument("--run-date", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--measure", choices=("streaming", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        if args.measure == "streaming":
            result = measure_streaming(args.file, args.run_date)
        else:
            result = measure_pandas(args.file, args.run_date, args.compare_rows)
        print(json.dumps(result))
        return

    path, generator = make_file(args.dir, args.rows, args.generator)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path} ({args.rows:,} rows, {size_mb:,.0f} MB, {generator} generator); run date {args.run_date}", flush=True)
    common = ["--file", str(path), "--run-date", args.run_date.isoformat()]
    results = {"streaming": run_child(["--measure", "streaming", *common], args.timeout)}
    if not args.skip_compare:
        extra = ["--compare-rows", str(args.compare_rows)] if args.compare_rows else []
        try:
            results["pandas"] = run_child(["--measure", "pandas", *common, *extra], args.timeout)
        except subprocess.TimeoutExpired:
            results["pandas"] = {"error": [f"timed out after {args.timeout:.0f} s"]}

    print()
    print(f"{'method':<48} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'peak RSS':>10}  verdict")
    for name, r in results.items():
        label = {
            "streaming": "validate_file (streaming + GX on first rows)",
            "pandas": "pd.read_csv whole file + GX validate (pandas)",
        }[name]
        if name == "pandas" and args.compare_rows:
            label = f"pd.read_csv first {args.compare_rows:,} rows + GX validate"
        if "error" in r:
            print(f"{label:<48} failed: {' '.join(r['error'])}")
            continue
        verdict = "passed" if r["passed"] else f"rejected {r['checks']}"
        print(f"{label:<48} {r['rows']:>12,} {r['seconds']:>9.2f} {r['rows'] / r['seconds']:>12,.0f} "
              f"{r['peak_rss_mb']:>8,.0f} MB  {verdict}")
    print()
    s = results["streaming"]
    if "error" not in s:
        print(f"streaming: imports + GX context {s['import_seconds']:.1f} s before the call (not in rows/s; "
              f"{s['rows'] / (s['seconds'] + s['import_seconds']):,.0f} rows/s including them); "
              f"GX itself validated the first {s['gx_rows']:,} rows")
    p = results.get("pandas", {})
    if p and "error" not in p:
        print(f"pandas: read_csv {p['read_seconds']:.1f} s + GX {p['gx_seconds']:.1f} s; imports {p['import_seconds']:.1f} s")
        if args.compare_rows and args.compare_rows < args.rows:
            print(f"NOTE: the pandas side was capped at {args.compare_rows:,} of {args.rows:,} rows (--compare-rows)")
    print(json.dumps({"rows": args.rows, "file_mb": round(size_mb), "generator": generator, "results": results}))


if __name__ == "__main__":
    main()
