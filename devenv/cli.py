"""``python -m devenv demo|ui``: the embedded default end to end (what ``make demo`` / ``make ui`` run).

- ``demo --ds D [--days N]``: ``movielens_daily`` for one date with ``airflow dags test``, then its summary;
  with N > 1, the release replayed as a daily feed over the N dates ending at D, in order.
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


def _run_date(ds: str, env: dict[str, str], mailbox: Mailbox, conf: dict) -> tuple[str, dict[str, float], int]:
    """One ``airflow dags test`` of the daily DAG: its final state, wall times and emails sent."""
    emails_before = len(mailbox.messages())
    log_file = VAR_DIR / "logs" / f"demo-{ds}.log"
    print(f"Running {DAG_ID} for {ds} with `airflow dags test` (log: {log_file}) ...", flush=True)
    t0 = time.monotonic()
    state = local_airflow.dags_test(DAG_ID, ds, env, conf=conf, log_file=log_file)
    timings = {"dags_test": time.monotonic() - t0}
    if state != "success":
        print(f"\n{DAG_ID} for {ds} did not succeed ({state}). See {log_file} and the failure email in {mailbox.folder}.")
    return state, timings, len(mailbox.messages()) - emails_before


def demo(ds: str, days: int = 1) -> int:
    """The daily DAG for ``ds`` on the embedded default; with ``days`` > 1, the release replayed as a daily
    feed (ingest mode ``replay``) over the ``days`` dates ending at ``ds``, run in order as a backfill would."""
    layout.check_ds(ds)
    if days < 1:
        raise SystemExit(f"DAYS must be 1 or more, got {days}")
    end = dt.date.fromisoformat(ds)
    dates = [(end - dt.timedelta(days=days - 1 - k)).isoformat() for k in range(days)]
    replay = {"MOVIELENS_REPLAY_START": dates[0], "MOVIELENS_REPLAY_DAYS": str(days)} if days > 1 else {}
    conf = {"ingest": "replay" if days > 1 else "auto"}
    mail_dir = VAR_DIR / "mail"
    started = time.monotonic()
    with Mailbox(mail_dir) as mailbox:
        env = local_airflow.airflow_env(smtp_conn=mailbox.connection_uri_json(), extra=replay)
        t0 = time.monotonic()
        local_airflow.migrate(env)
        migrate_s = time.monotonic() - t0
        for date in dates:
            state, timings, emails_sent = _run_date(date, env, mailbox, conf)
            if state != "success":
                return 1
            if len(dates) > 1 and date != ds:
                print(f"  {date}: {state} in {timings['dags_test']:.1f} s, {emails_sent} email(s)", flush=True)
    timings["airflow_db_migrate"] = migrate_s
    timings["total"] = time.monotonic() - started
    os.environ.update({k: v for k, v in env.items() if k.startswith("MOVIELENS_")})
    lake = Lake.from_settings(config.load())
    summary = lake.read_json(lake.zone(layout.REPORTS, ds) / layout.RUN_SUMMARY)
    timings.update({f"spark_{k}": v for k, v in summary["timings_s"].get("spark", {}).items()})
    print_summary(summary, mail_dir, timings)
    print(f"{emails_sent} email(s) received during the run of {ds}, in {mail_dir}")
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
                f"(kept in {stack.passwords_file}; set MOVIELENS_UI_PASSWORD to choose it). The MovieLens pages are "
                f"under Browse; the API at {stack.base_url}/movielens/api/v1/docs (a read-only token: POST /auth/token "
                f"as '{stack.reader}', password '{stack.reader_password}'). Emails go to {mail_dir}. Ctrl-C stops everything.",
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
    run.add_argument("--ds", default=dt.date.today().isoformat(), help="the (last) date to run")
    run.add_argument("--days", type=int, default=1, help="more than 1: replay the release over this many dates")
    web = sub.add_parser("ui", help="the Airflow web UI with this project's DAGs")
    web.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.ds, args.days)
    return ui(args.port)


if __name__ == "__main__":
    sys.exit(main())
