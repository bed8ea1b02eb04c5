"""The missed-deadline email: a scheduled date's run had not finished (its lists not published) by the
deadline, ``MOVIELENS_PUBLISH_DEADLINE_HOURS`` after its logical date (Airflow's Deadline Alerts, 3.1+:
:func:`movielens.dag_defaults.publish_deadline`).

Airflow's triggerer awaits :func:`email_missed_deadline` with a small context: the run (as the REST API
shows it) and the deadline. Only scheduled runs are emailed about: a backfill or a manual run of a past
date is past its deadline from the start, and saying so would be noise.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from movielens import config
from movielens.notify import mail

log = logging.getLogger(__name__)

TEMPLATE = "deadline_email"
SUBJECT = "[movielens] LATE: {dag_id} {ds} not published by {deadline}"


def facts(context: dict[str, Any]) -> dict[str, Any]:
    run = context.get("dag_run") or {}
    logical = run.get("logical_date") or ""
    settings = config.load()
    return {
        "dag_id": run.get("dag_id", "movielens_daily"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "run_type": run.get("run_type"),
        "state": run.get("state"),
        "ds": str(logical)[:10] or "no logical date",
        "deadline": str((context.get("deadline") or {}).get("deadline_time", "")),
        "airflow_run": f"{settings.airflow_base_url}/dags/{run.get('dag_id', 'movielens_daily')}/runs/"
                       f"{run.get('dag_run_id') or run.get('run_id')}",
    }


def send_deadline_email(context: dict[str, Any]) -> bool:
    """Email the team that a scheduled run missed its deadline; False (logged) for other runs. Never raises."""
    f = facts(context)
    if f["run_type"] != "scheduled":
        log.info("deadline of %s %s passed, not emailed: a %s run", f["dag_id"], f["ds"], f["run_type"])
        return False
    settings = config.load()
    return mail.send(what=f"deadline email for {f['dag_id']} {f['ds']}", template=TEMPLATE, values={"f": f},
                     subject=SUBJECT.format(**f), to=settings.alert_email_to, from_email=settings.email_from,
                     conn_id=settings.smtp_conn_id)


async def email_missed_deadline(context: dict[str, Any] | None = None, **_: Any) -> bool:
    """The Deadline Alert's callback (run by the triggerer): the email, off the event loop."""
    return await asyncio.to_thread(send_deadline_email, context or {})
