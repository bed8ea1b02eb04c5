"""The data incident email: a landed file was rejected, while the run goes on with the others.

Sent from the routing task as soon as the file is rejected. Mail must never hold up or fail the data
work: the SMTP connection's own timeout and retry limit bound the attempt, and any error is logged
and swallowed (the rejection itself is already recorded in the lake, with its report).
"""

from __future__ import annotations

import logging
from typing import Any

from movielens import config

log = logging.getLogger(__name__)

SUBJECT = "[movielens] data incident: {file} rejected for {ds}"


def render(record: dict[str, Any]) -> tuple[str, str]:
    """(subject, HTML body) for a rejected file's routing record."""
    import jinja2

    from movielens.notify import TEMPLATES

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    body = env.get_template("incident_email.html").render(r=record)
    return SUBJECT.format(file=record["file"], ds=record["ds"]), body


def send_rejection_email(record: dict[str, Any]) -> bool:
    """Email the team about a rejected file; True if sent. Never raises."""
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        settings = config.load()
        subject, body = render(record)
        with SmtpHook(smtp_conn_id=settings.smtp_conn_id) as hook:
            hook.send_email_smtp(to=settings.alert_email_to, from_email=settings.email_from, subject=subject,
                                 html_content=body)
        log.info("incident email sent for %s to %s", record["file"], ", ".join(settings.alert_email_to))
        return True
    except Exception as err:  # noqa: BLE001 - mail trouble must not fail the routing
        log.error("incident email for rejected file %s NOT sent: %s: %s", record.get("file"), type(err).__name__, err)
        return False
