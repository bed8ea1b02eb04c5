"""The daily Spark job: bronze -> silver -> gold -> train -> similar in one Spark session, with a report.

One session saves Spark's start-up (about 15 s on 2 cores) per stage; each stage is also its own entry
point (bronze.py, silver.py, gold.py, train.py, similar.py) for reruns and clusters. Writes
``reports/ds=D/spark_job.json``: the settings it ran with, stage timings, row counts, model metrics, the
protocol and outputs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_jobs import bronze, gold, silver, similar, train
from spark_jobs.common import layout, session
from spark_jobs.common.args import add_model_args, base_parser, job_settings

STAGES = ("bronze", "silver", "gold", "train", "similar")


def main(argv: list[str] | None = None) -> None:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {STAGES}")
    try:
        train.check_params(args)
    except ValueError as err:
        parser.error(str(err))

    started = time.monotonic()
    spark = session.get_session(f"movielens-daily-{args.ds}")
    report: dict = {"ds": args.ds, "lake_root": args.lake_root, "stages": stages, "settings": job_settings(args),
                    "timings_s": {}, "counts": {}}
    report["timings_s"]["spark_start"] = round(time.monotonic() - started, 2)
    for stage in stages:
        t0 = time.monotonic()
        if stage == "bronze":
            report["counts"]["bronze"] = bronze.run(spark, args.lake_root, args.ds)
        elif stage == "silver":
            report["counts"]["silver"] = silver.run(spark, args.lake_root, args.ds, args.liked_threshold)
        elif stage == "gold":
            counts = gold.run(spark, args.lake_root, args.ds, args.popular_min_ratings, args.popular_top_n)
            report["counts"].setdefault("gold", {}).update(counts)
            report.setdefault("outputs", {}).update({t: layout.table_dir(args.lake_root, layout.GOLD, t, args.ds) for t in counts})
        elif stage == "train":
            trained = train.run(spark, args.lake_root, args.ds, args)
            report["counts"].setdefault("gold", {}).update(trained.pop("counts"))
            report.setdefault("outputs", {}).update(trained.pop("outputs"))
            report.update(trained)
        else:
            counts = similar.run(spark, args.lake_root, args.ds, train.SIMILARITY_MODEL, args.similar_movies)
            report["counts"].setdefault("gold", {}).update(counts)
            report.setdefault("outputs", {})["similar_movies"] = layout.table_dir(args.lake_root, layout.GOLD, "similar_movies", args.ds)
        report["timings_s"][stage] = round(time.monotonic() - t0, 2)
    report["timings_s"]["total"] = round(time.monotonic() - started, 2)
    session.write_json(spark, layout.join(layout.zone_dir(args.lake_root, layout.REPORTS, args.ds), layout.SPARK_REPORT), report)
    print(f"spark job done for ds={args.ds}: {report['timings_s']}")
    spark.stop()


if __name__ == "__main__":
    main()
