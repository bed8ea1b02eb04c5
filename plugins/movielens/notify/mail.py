"""The one way the platform's emails are rendered and sent: multipart/alternative, plain text + HTML.

Every email (success, failure, data incident) has two Jinja templates in ``templates/``:
``<name>.txt`` (plain text, not escaped) and ``<name>.html`` (autoescaped). :func:`send` fills both
from the same values (:func:`render`), builds one ``multipart/alternative`` message of them
(:func:`build_message`: text/plain first, text/html last, the part mail clients prefer) and hands it
to the SMTP server.

Why not ``SmtpHook.send_email_smtp``: the SMTP provider (3.2) builds a ``multipart/mixed`` message with a
single text/html part and has no way to add a text part. We keep everything else of the hook: its
connection (host, port, SSL or STARTTLS, login or OAuth2, the connection's ``timeout`` on every socket
operation, ``retry_limit`` for connecting) and send our message through the client it opened, retrying
up to ``retry_limit`` times as the hook does. So every wait is bounded by the connection's settings: a
server that accepts the connection and never answers costs ``(retry_limit + 1) x timeout``.

Mail must never fail or stall the data work: :func:`send` never raises; an error is logged and it
returns False, and the caller decides what that means (the incident email notes it in the routing
result, the success email task ends as skipped, the failure callback has nothing else to do).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),  # .txt stays as written
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **values: Any) -> tuple[str, str]:
    """(plain text, HTML) of the email ``name`` from ``templates/<name>.txt`` and ``templates/<name>.html``."""
    env = _environment()
    return env.get_template(f"{name}.txt").render(**values), env.get_template(f"{name}.html").render(**values)


def build_message(*, subject: str, text: str, html: str, from_email: str, to: Iterable[str]) -> EmailMessage:
    """A multipart/alternative message: the text/plain part, then the text/html part."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = from_email
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=from_email.rpartition("@")[2] or None)
    # quoted-printable keeps every line 7-bit and short (titles are UTF-8) and the .eml readable.
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def as_smtp_bytes(message: EmailMessage) -> bytes:
    """The message as sent: CRLF line ends, headers not folded.

    Python 3.11's folding (``email.policy.default``) moved the whole value of
    ``Subject: [movielens] FAILED movielens_daily.check_training_data for 2026-11-20 (try 1)`` onto a
    continuation line, and the reading side then returns the subject with a leading space. Both bodies
    are quoted-printable, so their lines stay within 76 columns either way.
    """
    return message.as_bytes(policy=message.policy.clone(max_line_length=None, linesep="\r\n"))


def send(
    *, what: str, template: str, values: dict[str, Any], subject: str, to: Iterable[str], from_email: str, conn_id: str
) -> bool:
    """Render the email ``template`` with ``values`` and send it through the SMTP connection ``conn_id``.

    True if sent. Never raises: a template error is logged like an SMTP error. ``what`` names the email
    in the log (``"success email for movielens_daily 2026-11-20"``).
    """
    recipients = list(to)
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        text, html = render(template, **values)
        message = build_message(subject=subject, text=text, html=html, from_email=from_email, to=recipients)
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            # The client the hook connected and logged in with (the provider's own test_connection
            # uses it the same way); retried like the hook's send_email_smtp.
            client = hook._smtp_client
            for attempt in range(hook.smtp_retry_limit + 1):
                try:
                    client.sendmail(from_email, recipients, as_smtp_bytes(message))
                    break
                except Exception:
                    if attempt == hook.smtp_retry_limit:
                        raise
        log.info("%s sent to %s", what, ", ".join(recipients))
        return True
    except Exception as err:  # noqa: BLE001 - mail trouble must not fail the data work
        log.error("%s NOT sent: %s: %s", what, type(err).__name__, err)
        return False
