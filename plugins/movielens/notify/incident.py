"""The data incident email: a landed file was rejected, while the run goes on with the others.

Sent from the routing task as soon as the file is rejected. Mail must never hold up or fail the data
work: :func:`movielens.notify.mail.send` bounds the attempt by the SMTP connection's timeout and retry
limit and logs any error instead of raising (the rejection itself is already recorded in the lake,
with its report).
"""

from __future__ import annotations

from typing import Any

from movielens import config
from movielens.notify import mail

TEMPLATE = "incident_email"
SUBJECT = "[movielens] data incident: {file} rejected for {ds}"


def subject(record: dict[str, Any]) -> str:
    return SUBJECT.format(file=record["file"], ds=record["ds"])


def send_rejection_email(record: dict[str, Any]) -> bool:
    """Email the team about a rejected file; True if sent. Never raises."""
    settings = config.load()
    return mail.send(what=f"incident email for rejected file {record.get('file')}", template=TEMPLATE,
                     values={"r": record}, subject=subject(record), to=settings.alert_email_to,
                     from_email=settings.email_from, conn_id=settings.smtp_conn_id)
