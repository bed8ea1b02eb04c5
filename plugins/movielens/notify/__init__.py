"""Emails through Airflow's SMTP provider (connection ``smtp_default`` by default).

- :class:`FailureEmail`: a task failure callback (``SmtpNotifier``) to the team: DAG, task, try,
  logical date, the error, the log link.
- :class:`SuccessEmailOperator`: the last task of a good run (``EmailOperator``): files validated and
  rejected with reasons, metrics per model, sample recommendations, where the summary is.

Recipients and sender are read from configuration when the email is sent, not when the DAG is parsed.
The success email is a task rather than a DAG-level ``on_success_callback`` so that it also goes out
under ``airflow dags test`` (where DAG-level notifiers fail) and shows in the UI as a task.
"""

from __future__ import annotations

from pathlib import Path

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.providers.smtp.operators.smtp import EmailOperator

from movielens import config

TEMPLATES = Path(__file__).parent / "templates"
FAILURE_SUBJECT = "[movielens] FAILED {{ dag.dag_id }}.{{ ti.task_id }} for {{ ds }} (try {{ ti.try_number }})"
SUCCESS_SUBJECT = "[movielens] {{ dag.dag_id }} {{ ds }}: {{ ti.xcom_pull(task_ids='write_run_summary')['files_validated'] }} files validated, {{ ti.xcom_pull(task_ids='write_run_summary')['files_rejected'] }} rejected"


class FailureEmail(SmtpNotifier):
    """Task failure email to ``MOVIELENS_ALERT_EMAIL_TO``."""

    def __init__(self, **kwargs):
        super().__init__(to="set-when-sent", subject=FAILURE_SUBJECT, html_content="", **kwargs)

    def render_template_fields(self, context, jinja_env=None) -> None:
        # Rendering mutates the fields in place and one notifier serves every task of the DAG:
        # start from the template each time so a second failure is not reported as the first.
        settings = config.load()
        self.to = settings.alert_email_to
        self.from_email = settings.email_from
        self.smtp_conn_id = settings.smtp_conn_id
        self.subject = FAILURE_SUBJECT
        self.html_content = (TEMPLATES / "failure_email.html").read_text()
        super().render_template_fields(context, jinja_env)


class SuccessEmailOperator(EmailOperator):
    """The run's success email to ``MOVIELENS_EMAIL_TO``; body from ``templates/success_email.html``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("subject", SUCCESS_SUBJECT)
        kwargs.setdefault("html_content", "success_email.html")
        super().__init__(to="set-when-sent", **kwargs)

    def execute(self, context):
        settings = config.load()
        self.to = settings.email_to
        self.from_email = settings.email_from
        self.conn_id = settings.smtp_conn_id
        return super().execute(context)
