"""The publish deadline: the daily DAG's Deadline Alert and the email its callback sends."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from movielens import dag_defaults
from movielens.notify import deadline


def context(run_type: str) -> dict:
    """What Airflow's scheduler hands the triggerer's callback (Deadline.handle_miss)."""
    return {"dag_run": {"dag_id": "movielens_daily", "dag_run_id": f"{run_type}__2026-11-20T00:00:00+00:00",
                        "run_type": run_type, "state": "running", "logical_date": "2026-11-20T00:00:00Z"},
            "deadline": {"id": "d1", "deadline_time": "2026-11-20T08:00:00+00:00"}}


def test_the_deadline_follows_the_setting_and_refuses_nonsense(monkeypatch):
    from airflow.sdk.definitions.deadline import DeadlineReference

    alert = dag_defaults.publish_deadline()
    assert alert.interval == dt.timedelta(hours=dag_defaults.DEFAULT_PUBLISH_DEADLINE_HOURS)
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.callback.path == "movielens.notify.deadline.email_missed_deadline"
    monkeypatch.setenv("MOVIELENS_PUBLISH_DEADLINE_HOURS", "5.5")
    assert dag_defaults.publish_deadline().interval == dt.timedelta(hours=5, minutes=30)
    monkeypatch.setenv("MOVIELENS_PUBLISH_DEADLINE_HOURS", "off")
    assert dag_defaults.publish_deadline() is None
    for bad in ("soon", "0", "200"):
        monkeypatch.setenv("MOVIELENS_PUBLISH_DEADLINE_HOURS", bad)
        with pytest.raises(ValueError, match="MOVIELENS_PUBLISH_DEADLINE_HOURS"):
            dag_defaults.publish_deadline()


def test_a_scheduled_run_past_its_deadline_emails_the_team_and_a_backfill_does_not(monkeypatch, mailbox):
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": mailbox.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 2, "retry_limit": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("MOVIELENS_ALERT_EMAIL_TO", "oncall@example.test")
    assert asyncio.run(deadline.email_missed_deadline(context=context("backfill"))) is False
    assert mailbox.messages() == []
    assert asyncio.run(deadline.email_missed_deadline(context=context("scheduled"))) is True
    [message] = mailbox.messages()
    assert message["Subject"] == "[movielens] LATE: movielens_daily 2026-11-20 not published by 2026-11-20T08:00:00+00:00"
    assert message["To"] == "oncall@example.test"
    for kind in ("plain", "html"):
        body = message.get_body(preferencelist=(kind,)).get_content()
        assert "running" in body and "scheduled__2026-11-20" in body and "MOVIELENS_PUBLISH_DEADLINE_HOURS" in body
