"""The daily Spark job: bronze -> silver -> checks -> gold -> train (and the publish gate) -> similar, in one
Spark session.

One session saves Spark's start-up (about 15 s on 2 cores) per stage; each stage is also its own entry
point (bronze.py, silver.py, gold.py, train.py, similar.py) for reruns and clusters; ``checks`` is the
next-day backtest (backtest.py) and the drift and volume of what landed (drift.py). Writes
``reports/ds=D/spark_job.json``: stage timings, row counts and outputs (paths relative to the lake root).
What the job ran with and measured is in ``models/ds=D/params.json`` (train.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_jobs import backtest, bronze, drift, gate, gold, silver, similar, train
from spark_jobs.common import layout, session
from spark_jobs.common.spec import job_parser

STAGES = ("bronze", "silver", "checks", "gold", "train", "similar")


def gold_table(table: str, ds: str) -> str:
    """A gold partition relative to the lake root."""
    return layout.table_dir("", layout.GOLD, table, ds)


def main(argv: list[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {STAGES}")
    settings = args.spec.settings

    started = time.monotonic()
    spark = session.get_session(f"movielens-daily-{args.ds}")
    report: dict = {"ds": args.ds, "stages": stages, "timings_s": {}, "counts": {}, "outputs": {}}
    report["timings_s"]["spark_start"] = round(time.monotonic() - started, 2)
    for stage in stages:
        t0 = time.monotonic()
        if stage == "bronze":
            report["counts"]["bronze"] = bronze.run(spark, args.lake_root, args.ds)
        elif stage == "silver":
            report["counts"]["silver"] = silver.run(spark, args.lake_root, args.ds, settings["liked_threshold"])
        elif stage == "checks":
            report["backtest"] = backtest.run(spark, args.lake_root, args.ds, settings["top_k"])
            report["drift"] = drift.run(spark, args.lake_root, args.ds, settings["drift_window_days"],
                                        settings["volume_alert_ratio"], settings["psi_alert"])
            for table, done in ((backtest.TABLE, report["backtest"]), (drift.TABLE, report["drift"])):
                report["counts"].setdefault("gold", {})[table] = done["rows"]
                report["outputs"][table] = gold_table(table, args.ds)
        elif stage == "gold":
            counts = gold.run(spark, args.lake_root, args.ds, settings)
            report["counts"].setdefault("gold", {}).update(counts)
            report["outputs"].update({t: gold_table(t, args.ds) for t in counts})
        elif stage == "train":
            champion = gate.champion(spark, args.lake_root, args.ds)
            trained = train.run(spark, args.lake_root, args.ds, args.spec, champion)
            report["publication"] = gate.run(spark, args.lake_root, args.ds, settings, trained["models"], champion,
                                             trained["champion_metrics"])
            report["counts"].setdefault("gold", {}).update(trained["counts"])
            report["outputs"].update(trained["outputs"])
            report["train_timings_s"] = trained["train_timings_s"]
        else:
            counts = similar.run(spark, args.lake_root, args.ds, train.SIMILARITY_MODEL, settings)
            report["counts"].setdefault("gold", {}).update(counts)
            report["outputs"]["similar_movies"] = gold_table("similar_movies", args.ds)
        report["timings_s"][stage] = round(time.monotonic() - t0, 2)
    report["timings_s"]["total"] = round(time.monotonic() - started, 2)
    session.write_json(spark, layout.join(layout.zone_dir(args.lake_root, layout.REPORTS, args.ds), layout.SPARK_REPORT), report)
    print(f"spark job done for ds={args.ds}: {report['timings_s']}")
    spark.stop()


if __name__ == "__main__":
    main()
