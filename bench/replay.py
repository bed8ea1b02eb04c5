"""The daily loop on a replayed release: `make demo DAYS=N`, then per date the next-day backtest of the served
lists and of popularity, the publish gate's decision, what landed, and the wall time.

    .venv/bin/python bench/replay.py [--dir DIR] [--ds 2026-12-01] [--days 7]
    .venv/bin/python bench/replay.py --lake file:///path/to/lake --log demo.out --ds 2026-12-01 --days 7

The first form runs `python -m devenv demo --ds DS --days N` (what `make demo DAYS=N` runs) on a fresh lake
under var/bench/replay and prints the table; the second prints it for a lake and a demo's output already
there. The target (issue 14): the served lists' backtest NDCG@10 at least twice popularity's on every date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^  (\d{4}-\d{2}-\d{2}): success in ([\d.]+) s", re.M)


def walls(output: str, last_ds: str) -> dict[str, float]:
    """Each date's run wall time from the demo's output."""
    found = {ds: float(s) for ds, s in LINE.findall(output)}
    last = re.search(r"Wall time \(s\): (\{.*\})", output)
    if last:
        found[last_ds] = json.loads(last.group(1))["run"]
    return found


def table(lake: Path, dates: list[str], wall: dict[str, float]) -> str:
    rows = ["| ds | served lists of | users (fallback) | NDCG@10 served | NDCG@10 popularity | ratio | P@10 served "
            "| P@10 popularity | known users: NDCG@10 served / popularity (ratio) | gate | ratings landed | new users "
            "| PSI | wall (s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for ds in dates:
        s = json.loads((lake / "reports" / f"ds={ds}" / "run_summary.json").read_text())
        b, p, d = s["backtest"], s["publication"], s["drift"]["metrics"]
        gate = ("published" + (" (forced)" if p.get("forced") else "")) if p.get("published") else "held back"
        psi = f"{d['rating_psi']:.3f}" if d.get("rating_psi") is not None else "-"
        if b.get("status") == "scored":
            served, popular = b["lists"]["served"], b["lists"]["popularity"]
            ratio = served["ndcg_at_10"] / popular["ndcg_at_10"] if popular["ndcg_at_10"] else float("inf")
            known, popular_known = b["lists"].get("served_known"), b["lists"].get("popularity_known")
            known_text = (f"{known['ndcg_at_10']:.4f} / {popular_known['ndcg_at_10']:.4f} "
                          f"({known['ndcg_at_10'] / popular_known['ndcg_at_10']:.2f})"
                          if known and popular_known and popular_known["ndcg_at_10"] else "-")
            scores = (f"{served['users_with_new_ratings']} ({served['fallback_users']}) | {served['ndcg_at_10']:.4f} | "
                      f"{popular['ndcg_at_10']:.4f} | {ratio:.2f} | {served['precision_at_10']:.4f} | "
                      f"{popular['precision_at_10']:.4f} | {known_text}")
        else:
            scores = f"{b.get('status')} | | | | | |"
        rows.append(f"| {ds} | {b.get('served_ds') or '-'} | {scores} | {gate} | {d['ratings_landed']:,} | "
                    f"{d['new_users']} | {psi} | {wall.get(ds, float('nan')):.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT.parent / "shared" / "movielens" / "ml-latest-small")
    parser.add_argument("--ds", default=dt.date.today().isoformat())
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--lake", help="print the table for this file:// lake (with --log) instead of running")
    parser.add_argument("--log", type=Path, help="the demo's output, for the wall times")
    args = parser.parse_args()
    end = dt.date.fromisoformat(args.ds)
    dates = [(end - dt.timedelta(days=args.days - 1 - k)).isoformat() for k in range(args.days)]
    if args.lake:
        lake, output = Path(urlparse(args.lake).path), args.log.read_text() if args.log else ""
    else:
        work = ROOT / "var" / "bench" / "replay"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        lake = work / "lake"
        env = {**os.environ, "MOVIELENS_DIR": str(args.dir.resolve()), "MOVIELENS_LAKE_URL": lake.as_uri(),
               "MOVIELENS_CACHE_DIR": str(work / "cache")}
        done = subprocess.run([sys.executable, "-m", "devenv", "demo", "--ds", args.ds, "--days", str(args.days)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        output = done.stdout + done.stderr
        (work / "demo.out").write_text(output)
        if done.returncode != 0:
            print(output[-3000:], file=sys.stderr)
            return done.returncode
    print(table(lake, dates, walls(output, args.ds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
