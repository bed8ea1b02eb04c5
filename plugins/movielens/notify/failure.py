"""The task failure email: which DAG, task, try and logical date failed, with the error and the log link.

Called by :class:`movielens.notify.FailureEmail`, the ``on_failure_callback`` of every task. The
facts are taken out of the Airflow context first (:func:`facts`), so the templates see plain values
and the email renders the same in a test as in a task.
"""

from __future__ import annotations

from typing import Any

from movielens import config
from movielens.notify import mail

TEMPLATE = "failure_email"
SUBJECT = "[movielens] FAILED {dag_id}.{task_id} for {ds} (try {try_number})"


# What to read after the task log, by DAG: a failed lookup has nothing to do with landed files.
WHERE_TO_LOOK = {
    "movielens_daily": "landed files and their routing records are under reports/ds={ds}/files/ of the lake, "
                       "rejected files and their reports under rejected/ds={ds}/.",
    "movielens_similar_movies": "the answer comes from the lake's gold/similar_movies partitions with ds <= {ds} "
                                "(written by movielens_daily); a movie nobody rated has no similar movies.",
}


def facts(context: dict[str, Any]) -> dict[str, Any]:
    """What the email says, from a task's Airflow context."""
    ti = context["ti"]
    error = context.get("exception")
    logical_date = context.get("logical_date")
    return {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index if ti.map_index is not None and ti.map_index >= 0 else None,
        "try_number": ti.try_number,
        "ds": context.get("ds") or "no logical date",
        "logical_date": logical_date.isoformat() if logical_date else None,
        "run_id": context.get("run_id") or ti.run_id,
        "error": f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "no error recorded"),
        "log_url": ti.log_url,
        "where": "the task log above" + (f"; {WHERE_TO_LOOK[ti.dag_id].format(ds=context.get('ds') or 'D')}"
                                         if ti.dag_id in WHERE_TO_LOOK else "."),
    }


def subject(f: dict[str, Any]) -> str:
    return SUBJECT.format(**f)


def send_failure_email(context: dict[str, Any]) -> bool:
    """Email the team about a failed task; True if sent. Never raises."""
    settings = config.load()
    f = facts(context)
    return mail.send(what=f"failure email for {f['dag_id']}.{f['task_id']} {f['ds']}", template=TEMPLATE,
                     values={"f": f}, subject=subject(f), to=settings.alert_email_to,
                     from_email=settings.email_from, conn_id=settings.smtp_conn_id)
