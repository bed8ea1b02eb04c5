"""``python -m devenv demo|ui``: the embedded default end to end (what ``make demo`` / ``make ui`` run).

- ``demo --ds D [--days N]``: ``movielens_daily`` for one date on Airflow's components (as ``make ui`` runs
  them), then its summary; with N > 1, the release replayed as a daily feed over the N dates ending at D, in order.
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
from movielens import config, lineage
from movielens.config import VAR_DIR
from movielens.lake import Lake
from spark_jobs.common import layout

DAG_ID = "movielens_daily"
#: The demo's Airflow makes only the demo's runs (unpausing must not also start today's scheduled one), and
#: its DAG files do not change while it runs (parsed once, not every 30 s beside Spark on the same cores).
DEMO_STACK = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False", "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
              # A demo on another lake than the last one: the orphan check activates its Assets within seconds.
              "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "5"}


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


def _mailbox_or_callers_smtp(mailbox: Mailbox) -> str | None:
    """The local mailbox's connection, unless the caller set ``AIRFLOW_CONN_SMTP_DEFAULT`` (theirs wins, as the
    docs say every caller's ``AIRFLOW_CONN_*`` does)."""
    if os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT"):
        print("Emails go to your AIRFLOW_CONN_SMTP_DEFAULT (unset it to keep them in var/mail).", flush=True)
        return None
    return mailbox.connection_uri_json()


def _why_it_failed(stack: local_airflow.AirflowStack, run: dict) -> str:
    """The failed tasks, each with its log file and the log's last error line."""
    lines = []
    for task, log in stack.failed_tasks(DAG_ID, run["dag_run_id"]).items():
        error = ""
        if log.is_file():
            events = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
            errors = [e for e in events if e.get("level") in ("error", "critical")]
            if errors:  # the exception of a failed task, as its structured log records it
                detail = (errors[-1].get("error_detail") or [{}])[-1]
                error = ": " + (f"{detail['exc_type']}: {detail['exc_value']}" if detail.get("exc_type")
                                else errors[-1].get("event", "").strip())[:500]
        lines.append(f"  {task}{error}\n    log: {log}")
    return "\n".join(lines) or "  (no task failed: see the scheduler's log)"


def demo(ds: str, days: int = 1, *, port: int = 8080, var_dir: Path = VAR_DIR) -> int:
    """The daily DAG for ``ds`` on the embedded default; with ``days`` > 1, the release replayed as a daily
    feed (ingest mode ``replay``) over the ``days`` dates ending at ``ds``, run in order as a backfill would.

    Runs on Airflow as ``make ui`` runs it (:class:`local_airflow.AirflowStack`, the same AIRFLOW_HOME), each
    date triggered as from the UI, so ``make ui`` afterwards shows the runs with their durations and task logs.
    A date that ran before is cleared and runs again. ``var_dir`` holds the Airflow home and the mail."""
    layout.check_ds(ds)
    if days < 1:
        raise SystemExit(f"DAYS must be 1 or more, got {days}")
    end = dt.date.fromisoformat(ds)
    dates = [(end - dt.timedelta(days=days - 1 - k)).isoformat() for k in range(days)]
    replay = {"MOVIELENS_REPLAY_START": dates[0], "MOVIELENS_REPLAY_DAYS": str(days)} if days > 1 else {}
    conf = {"ingest": "replay" if days > 1 else "auto"}
    mail_dir = var_dir / "mail"
    started = time.monotonic()
    timings: dict[str, float] = {}
    with Mailbox(mail_dir) as mailbox:
        env = local_airflow.airflow_env(home=var_dir / "airflow", smtp_conn=_mailbox_or_callers_smtp(mailbox), api_port=port,
                                        extra={**replay, **DEMO_STACK})
        stack = local_airflow.AirflowStack(env, what="`make demo`")
        print(f"Starting Airflow for the demo (logs in {stack.log_dir}) ...", flush=True)
        try:
            with stack:
                stack.wait_for_dags([DAG_ID])
                lake_url = env.get("MOVIELENS_LAKE_URL") or config.lake_url()
                stack.wait_for_assets([lineage.asset_uri(p, lake_url) for p in lineage.SPARK_JOB_PRODUCTS])
                stack.unpause(DAG_ID)
                timings["airflow_start"] = time.monotonic() - started
                for date in dates:
                    emails_before = len(mailbox.messages())
                    print(f"Running {DAG_ID} for {date} ...", flush=True)
                    t0 = time.monotonic()
                    run = stack.run_date(DAG_ID, date, conf=conf)
                    timings["run"] = time.monotonic() - t0
                    emails_sent = len(mailbox.messages()) - emails_before
                    if run["state"] != "success":
                        print(f"\n{DAG_ID} for {date} did not succeed ({run['state']}):\n{_why_it_failed(stack, run)}\n"
                              f"The failure email is in {mail_dir}; `make ui` shows the run.", flush=True)
                        return 1
                    if len(dates) > 1 and date != ds:
                        print(f"  {date}: {run['state']} in {timings['run']:.1f} s, {emails_sent} email(s)", flush=True)
                print("Stopping Airflow ...", flush=True)
        except local_airflow.AirflowHomeBusy as busy:
            print(f"{busy}.\nWith `make ui` running, trigger the date from the UI instead (or stop it and rerun "
                  f"`make demo`).", file=sys.stderr, flush=True)
            return 1
    timings["total"] = time.monotonic() - started
    os.environ.update({k: v for k, v in env.items() if k.startswith("MOVIELENS_")})
    lake = Lake.from_settings(config.load())
    summary = lake.read_json(lake.zone(layout.REPORTS, ds) / layout.RUN_SUMMARY)
    timings.update({f"spark_{k}": v for k, v in summary["timings_s"].get("spark", {}).items()})
    print_summary(summary, mail_dir, timings)
    print(f"{emails_sent} email(s) received during the run of {ds}, in {mail_dir}; `make ui` shows the runs and their logs")
    return 0


def ui(port: int) -> int:
    """Airflow 3 as deployed, with the same configuration: ``airflow api-server``, ``scheduler``,
    ``dag-processor`` and ``triggerer`` as separate processes (:class:`local_airflow.AirflowStack`, the launcher
    of the end-to-end tests). Stops them all with Ctrl-C."""
    mail_dir = VAR_DIR / "mail"
    with Mailbox(mail_dir) as mailbox:
        env = local_airflow.airflow_env(smtp_conn=_mailbox_or_callers_smtp(mailbox), api_port=port)
        stack = local_airflow.AirflowStack(env, admin_password=os.environ.get("MOVIELENS_UI_PASSWORD") or None,
                                           what="`make ui`")
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
        except (local_airflow.AirflowError, local_airflow.AirflowHomeBusy) as err:
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
    run.add_argument("--port", type=int, default=8080, help="the port of Airflow's API server while the demo runs")
    web = sub.add_parser("ui", help="the Airflow web UI with this project's DAGs")
    web.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.ds, args.days, port=args.port)
    return ui(args.port)


if __name__ == "__main__":
    sys.exit(main())
