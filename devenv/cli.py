"""``python -m devenv demo|ui``: the embedded default end to end (what ``make demo`` / ``make ui`` run).

- ``demo --ds D``: ``movielens_daily`` for one date with ``airflow dags test``, then its summary.
- ``ui --port 8080``: Airflow's components as separate processes, with the web UI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path

from devenv import local_airflow
from devenv.mailbox import Mailbox
from movielens import config
from movielens.config import VAR_DIR
from movielens.lake import Lake
from spark_jobs.common import layout

DAG_ID = "movielens_daily"


def _fmt_metrics(metrics: dict) -> str:
    keys = ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10")
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


def print_summary(summary: dict, mail_dir: Path, timings: dict) -> None:
    print("\n=== movielens_daily for", summary["ds"], "===")
    print(f"Files: {summary['files_validated']} validated, {summary['files_rejected']} rejected")
    for f in summary["files"]:
        line = f"  {f['file']:<28} {f['zone']:<9} rows={f['rows']}"
        reasons = f["reasons"] + f["notes"]
        print(line + (f"  ({'; '.join(reasons)})" if reasons else ""))
    print("Metrics:")
    for name, metrics in summary["metrics"].items():
        print(f"  {name:<14} {_fmt_metrics(metrics)}")
    for user, recs in summary.get("sample_recommendations", {}).items():
        print(f"Top {len(recs)} recommendations for user {user}:")
        for r in recs:
            print(f"  {r['rank']:>2}. {r['title']} (movie {r['movieId']})")
    print("Run summary:", summary["outputs"]["run_summary"])
    if summary["outputs"].get("report"):
        print("Report:", summary["outputs"]["report"])
    print("Emails:", mail_dir, "(open the .eml files with any mail client)")
    print("Wall time (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))


def demo(ds: str) -> int:
    layout.check_ds(ds)
    mail_dir = VAR_DIR / "mail"
    timings: dict[str, float] = {}
    started = time.monotonic()
    with Mailbox(mail_dir) as mailbox:
        env = local_airflow.airflow_env(smtp_conn=mailbox.connection_uri_json())
        t0 = time.monotonic()
        local_airflow.migrate(env)
        timings["airflow_db_migrate"] = time.monotonic() - t0
        emails_before = len(mailbox.messages())
        t0 = time.monotonic()
        log_file = VAR_DIR / "logs" / f"demo-{ds}.log"
        print(f"Running {DAG_ID} for {ds} with `airflow dags test` (log: {log_file}) ...", flush=True)
        state = local_airflow.dags_test(DAG_ID, ds, env, conf={"ingest": "auto"}, log_file=log_file)
        timings["dags_test"] = time.monotonic() - t0
        emails_sent = len(mailbox.messages()) - emails_before
    timings["total"] = time.monotonic() - started
    os.environ.update({k: v for k, v in env.items() if k.startswith("MOVIELENS_")})
    lake = Lake.from_settings(config.load())
    summary_path = lake.zone(layout.REPORTS, ds) / layout.RUN_SUMMARY
    if state != "success":
        print(f"\n{DAG_ID} for {ds} did not succeed ({state}). See {log_file} and the failure email in {mail_dir}.")
        return 1
    summary = lake.read_json(summary_path)
    spark_timings = summary["timings_s"].get("spark", {})
    timings.update({f"spark_{k}": v for k, v in spark_timings.items()})
    print_summary(summary, mail_dir, timings)
    print(f"{emails_sent} email(s) received during this run, in {mail_dir}")
    return 0


def ui(port: int) -> int:
    """Airflow 3 as deployed, with the same configuration: ``airflow api-server``, ``scheduler``,
    ``dag-processor`` and ``triggerer`` as separate processes (:class:`local_airflow.AirflowStack`, the launcher
    of the end-to-end tests). Stops them all with Ctrl-C."""
    mail_dir = VAR_DIR / "mail"
    with Mailbox(mail_dir) as mailbox:
        env = local_airflow.airflow_env(smtp_conn=mailbox.connection_uri_json(), api_port=port)
        stack = local_airflow.AirflowStack(env, admin_password=os.environ.get("MOVIELENS_UI_PASSWORD") or None)
        db = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"SQLite, {stack.home / 'airflow.db'}"
        print(
            f"Starting Airflow (api-server, scheduler, dag-processor, triggerer; metadata DB: {db.split('@')[-1]}); "
            f"logs in {stack.log_dir} ...",
            flush=True,
        )

        def stop_on_sigterm(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            stack.start()
            print(
                f"Airflow UI on {stack.base_url}: log in as '{stack.user}' with password '{stack.password}' "
                f"(kept in {stack.passwords_file}; set MOVIELENS_UI_PASSWORD to choose it). "
                f"Emails go to {mail_dir}. Ctrl-C stops everything.",
                flush=True,
            )
            while True:
                time.sleep(2)
                stack.check_running()
        except KeyboardInterrupt:
            print("Stopping Airflow ...", flush=True)
        except local_airflow.AirflowError as err:
            print(err, file=sys.stderr, flush=True)
            return 1
        finally:
            stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv", description="The embedded default, for development.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="run movielens_daily end to end on the embedded default")
    run.add_argument("--ds", default=dt.date.today().isoformat())
    web = sub.add_parser("ui", help="the Airflow web UI with this project's DAGs")
    web.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.ds)
    return ui(args.port)


if __name__ == "__main__":
    sys.exit(main())
