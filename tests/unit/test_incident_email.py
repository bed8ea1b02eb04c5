"""The data incident email: what it says, that it arrives, and that a dead SMTP server fails nothing."""

from __future__ import annotations

import json

from movielens.notify import incident, mail
from tests.servers import free_port

RECORD = {
    "file": "ratings_bad.csv", "kind": "ratings", "ds": "2026-11-20", "run_id": "manual__1", "zone": "rejected",
    "destination": "file:///lake/rejected/ds=2026-11-20/ratings_bad.csv", "bytes": 60, "sha256": "ab" * 32,
    "passed": False, "rows": 2, "notes": [], "report": "file:///lake/rejected/ds=2026-11-20/ratings_bad.report.json",
    "failures": [{"check": "rating_range", "message": "1 rating outside 0.5..5.0", "examples": ["line 2: 7.5"]}],
}


def _smtp_env(monkeypatch, port: int) -> None:
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 2, "retry_limit": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("MOVIELENS_ALERT_EMAIL_TO", "oncall@example.test")


def test_the_email_says_what_failed_and_where_the_report_is():
    assert incident.subject(RECORD) == "[movielens] data incident: ratings_bad.csv rejected for 2026-11-20"
    text, html = mail.render(incident.TEMPLATE, r=RECORD)
    for body in (text, html):
        assert "rating_range" in body and "line 2: 7.5" in body and RECORD["report"] in body and "land it again" in body
    assert "<" not in text


def test_the_email_arrives_with_a_text_and_an_html_part(monkeypatch, mailbox):
    _smtp_env(monkeypatch, mailbox.port)
    assert incident.send_rejection_email(RECORD) is True
    [message] = mailbox.messages()
    assert message["To"] == "oncall@example.test" and "ratings_bad.csv rejected" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "rating_range" in message.get_body(preferencelist=("plain",)).get_content()


def test_smtp_down_is_logged_and_never_raises(monkeypatch, caplog):
    _smtp_env(monkeypatch, free_port())  # nothing listens on it
    assert incident.send_rejection_email(RECORD) is False
    assert "incident email for rejected file ratings_bad.csv NOT sent" in caplog.text
