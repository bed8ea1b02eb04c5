"""The emails of the daily loop's checks, from the run summary (sent after it is written):

- "model held back": the publish gate kept the served lists (``summary["publication"]``), with what moved;
- data incident, unusual volume or rating shift (``summary["drift"]["alerts"]``): the files stay validated.

Like every email they never raise (:func:`movielens.notify.mail.send`).
"""

from __future__ import annotations

from typing import Any

from movielens import config
from movielens.notify import mail

HELD_BACK_SUBJECT = "[movielens] model held back for {ds}: the lists of {served_ds} stay served"
DRIFT_SUBJECT = "[movielens] data incident: unusual ratings for {ds}"


def send_alerts(summary: dict[str, Any]) -> dict[str, bool]:
    """Send the emails the summary calls for; which were due and whether each was sent."""
    settings = config.load()
    sent: dict[str, bool] = {}
    publication, drift = summary.get("publication") or {}, summary.get("drift") or {}
    common = {"to": settings.alert_email_to, "from_email": settings.email_from, "conn_id": settings.smtp_conn_id}
    if publication and not publication.get("published", True):
        sent["held_back"] = mail.send(
            what=f"held-back email for {summary['ds']}", template="held_back_email", values={"s": summary, "p": publication},
            subject=HELD_BACK_SUBJECT.format(ds=summary["ds"], served_ds=publication.get("served_ds")), **common)
    if drift.get("alerts"):
        sent["drift"] = mail.send(
            what=f"data incident email (drift) for {summary['ds']}", template="drift_email",
            values={"s": summary, "d": drift}, subject=DRIFT_SUBJECT.format(ds=summary["ds"]), **common)
    return sent
