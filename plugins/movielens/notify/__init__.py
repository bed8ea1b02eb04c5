"""Emails through Airflow's SMTP provider (connection ``smtp_default`` by default).

Three emails, each multipart/alternative with a plain-text and an HTML part rendered from the Jinja
templates ``templates/<name>.txt`` and ``.html`` and sent by the one helper :mod:`movielens.notify.mail`:

- :class:`FailureEmail` (:mod:`.failure`): a task failure callback (an Airflow notifier) to the team: DAG,
  task, try, logical date, the error, the log link.
- :class:`SuccessEmailOperator` (:mod:`.success`): the last task of a good run: files validated and
  rejected with reasons, metrics per model next to the previous run's, top recommendations, links to
  the Airflow run, the Data Docs and the run's report.
- the data incident email (:mod:`.incident`), sent by the routing task when a file is rejected.

Mail never fails or stalls the data work: the SMTP connection's ``timeout`` and ``retry_limit`` bound
every attempt and an error is logged, not raised. The success email task then ends as **skipped**: the
run stays successful (its data and summary are written and good), and the grid shows the email did not
go out. Recipients and sender are read from configuration when an email is sent, not when the DAG is
parsed. The success email is a task rather than a DAG-level ``on_success_callback`` so that it also goes
out under ``airflow dags test`` (where DAG-level notifiers fail) and shows in the UI as a task.
"""

from __future__ import annotations

from airflow.sdk import BaseNotifier, BaseOperator


class FailureEmail(BaseNotifier):
    """Task failure email to ``MOVIELENS_ALERT_EMAIL_TO``; use as ``on_failure_callback`` (Airflow calls it when
    a task fails with no retry left). Then the run lets go of its date's claim
    (:meth:`movielens.lake.Lake.claim_date`): it will end failed, and a clear takes the claim back.

    A plain notifier rather than the provider's ``SmtpNotifier``, whose message is HTML only.
    """

    def notify(self, context) -> None:
        from movielens.dag_defaults import release_claim
        from movielens.notify.failure import send_failure_email

        send_failure_email(context)
        release_claim(context.get("ds"), getattr(context.get("ti"), "run_id", None))


class SuccessEmailOperator(BaseOperator):
    """The run's success email to ``MOVIELENS_EMAIL_TO``, from the summary ``summary_task_id`` returned.

    Ends as skipped, not failed, when the email cannot be sent (see the module docstring).
    """

    ui_color = "#e6faf9"

    def __init__(self, *, summary_task_id: str = "write_run_summary", **kwargs):
        super().__init__(**kwargs)
        self.summary_task_id = summary_task_id

    def execute(self, context) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        from movielens.notify.success import send_success_email

        summary = context["ti"].xcom_pull(task_ids=self.summary_task_id)
        if not send_success_email(summary):
            raise AirflowSkipException("success email NOT sent (the error is logged above); the run's data is complete")
