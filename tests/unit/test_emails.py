"""The three emails: what each says (plain text and HTML), that each arrives at a real SMTP server as
multipart/alternative, and that a dead or silent SMTP server fails nothing within a bounded time."""

from __future__ import annotations

import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from movielens.notify import FailureEmail, SuccessEmailOperator, failure, mail, success
from spark_jobs.common import layout
from tests.servers import free_port

DS, PREVIOUS_DS = "2026-11-20", "2026-11-18"
SUMMARY = {
    "ds": DS, "dag_id": "movielens_daily", "run_id": "scheduled__2026-11-20T00:00:00+00:00",
    "files_validated": 1, "files_rejected": 1,
    "files": [
        {"file": "ratings.csv", "kind": "ratings", "zone": "validated", "rows": 100, "reasons": [], "notes": ["CRLF line endings"]},
        {"file": "ratings_bad.csv", "kind": "ratings", "zone": "rejected", "rows": 2, "reasons": ["rating_range: 1 rating outside 0.5..5.0"], "notes": []},
    ],
    "metrics": {
        "als_explicit": {"rmse": 0.8712, "mae": 0.6699, "ndcg_at_10": 0.0421, "evaluated_users": 40},
        "ease_ials": {"ndcg_at_10": 0.3012, "precision_at_10": 0.2501},
        "popularity": {"ndcg_at_10": 0.1503, "precision_at_10": 0.1204},
    },
    "sample_recommendations": {"1": [{"rank": r, "movieId": 100 + r, "title": f"Movie {r} – Amélie's {r}", "score": 1.0 / r} for r in range(1, 11)]},
    "outputs": {
        "run_summary": f"file:///lake/reports/ds={DS}/run_summary.json",
        "recommendations": f"file:///lake/gold/recommendations/ds={DS}",
        "data_docs": f"file:///lake/reports/ds={DS}/data_docs/index.html",
        "report": f"file:///lake/reports/ds={DS}/report.html",
    },
    "compute": {"backend": "local"},
    "links": {"airflow_run": "http://localhost:8080/dags/movielens_daily/runs/scheduled__2026-11-20T00%3A00%3A00%2B00%3A00"},
}
PREVIOUS = {"ds": PREVIOUS_DS, "metrics": {"als_explicit": {"rmse": 0.9012}, "ease_ials": {"ndcg_at_10": 0.2812}},
            "outputs": {"report": f"file:///lake/reports/ds={PREVIOUS_DS}/report.html"}}


def smtp_env(monkeypatch, port: int, timeout: int = 2, retry_limit: int = 1) -> None:
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": timeout, "retry_limit": retry_limit}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("MOVIELENS_EMAIL_TO", "team@example.test")
    monkeypatch.setenv("MOVIELENS_ALERT_EMAIL_TO", "oncall@example.test")


@pytest.fixture
def silent_smtp_port():
    """A server that accepts connections and never says a word (an SMTP server that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def parts(message) -> dict[str, str]:
    """{content type: decoded text} of a received multipart/alternative message."""
    assert message.get_content_type() == "multipart/alternative"
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


# --- what the emails say --------------------------------------------------------------------------

def test_success_email_puts_each_metric_next_to_the_previous_runs():
    text, html = mail.render(success.TEMPLATE, **success.values(SUMMARY, PREVIOUS))
    for body in (text, html):
        assert f"ds={PREVIOUS_DS}" in body and "No previous run" not in body
        assert "0.8712" in body and "0.9012" in body and "-0.0300" in body  # rmse now, before, change
        assert "0.3012" in body and "0.2812" in body and "+0.0200" in body  # ease_ials ndcg
        assert "evaluated_users" not in body, "counts are not quality metrics"
        assert "ratings_bad.csv" in body and "rating_range: 1 rating outside 0.5..5.0" in body and "CRLF line endings" in body
        for r in SUMMARY["sample_recommendations"]["1"]:
            assert (r["title"] if body is text else r["title"].replace("'", "&#39;")) in body
        for link in (SUMMARY["links"]["airflow_run"], SUMMARY["outputs"]["data_docs"], SUMMARY["outputs"]["report"],
                     PREVIOUS["outputs"]["report"]):
            assert link in body
    assert f'<a href="{SUMMARY["outputs"]["report"]}">' in html
    assert "<td>" not in text and "&#39;" not in text, "the text part is not HTML"


def test_success_email_says_no_previous_run_when_there_is_none():
    text, html = mail.render(success.TEMPLATE, **success.values(SUMMARY, None))
    for body in (text, html):
        assert "No previous run" in body and "0.8712" in body and "change" not in body.lower()
    assert success.subject(SUMMARY) == f"[movielens] movielens_daily {DS}: 1 files validated, 1 rejected"


@pytest.mark.parametrize("tuning, says", [
    ({"action": "reuse", "source_ds": PREVIOUS_DS, "tune_every_days": 7},
     f"Model parameters: reused from ds={PREVIOUS_DS}, whose tuning chose them (tuning every 7 days); no tuning in this run."),
    ({"action": "tune", "source_ds": None, "tune_every_days": 7}, "Model parameters: tuned in this run (tuning every 7 days)."),
    ({"action": "tune", "source_ds": None, "tune_every_days": 1}, "Model parameters: tuned in this run."),
    ({"action": "off", "source_ds": None, "tune_every_days": 7}, "Model parameters: as configured (tuning off)."),
])
def test_success_email_says_where_the_model_parameters_came_from(tuning, says):
    text, html = mail.render(success.TEMPLATE, **success.values({**SUMMARY, "tuning": tuning}, PREVIOUS))
    assert says in text and says in html
    # A summary without it (written before tuning was recorded) leaves the line out.
    text, html = mail.render(success.TEMPLATE, **success.values(SUMMARY, PREVIOUS))
    assert "Model parameters" not in text + html


def fake_failure_context(error: BaseException, task_id: str = "route_other_files", map_index: int = 2) -> dict:
    import datetime as dt

    ti = SimpleNamespace(dag_id="movielens_daily", task_id=task_id, map_index=map_index, try_number=3, run_id="manual__1",
                         log_url=f"http://localhost:8080/dags/movielens_daily/runs/manual__1/tasks/{task_id}/mapped/2?try_number=3")
    return {"ti": ti, "ds": DS, "logical_date": dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), "run_id": "manual__1",
            "exception": error}


def test_failure_email_says_dag_task_try_date_error_and_log_link():
    f = failure.facts(fake_failure_context(ValueError("ratings <b>exploded</b>")))
    assert failure.subject(f) == f"[movielens] FAILED movielens_daily.route_other_files for {DS} (try 3)"
    text, html = mail.render(failure.TEMPLATE, f=f)
    for body in (text, html):
        for fact in ("movielens_daily", "route_other_files", "map index 2", DS, "2026-11-20T00:00:00+00:00", "manual__1"):
            assert fact in body
    assert "Try:          3" in text and "<th align=\"left\">Try</th><td>3</td>" in html
    assert "ValueError: ratings <b>exploded</b>" in text and "ValueError: ratings &lt;b&gt;exploded&lt;/b&gt;" in html
    assert f["log_url"] in text and f'<a href="{f["log_url"]}">' in html
    assert f"landed files and their routing records are under reports/ds={DS}/files/" in text


def test_a_failed_similar_movies_lookup_does_not_point_at_landed_files():
    context = fake_failure_context(RuntimeError("movie 0 has no similar_movies"), task_id="find_similar_movies")
    context["ti"].dag_id = "movielens_similar_movies"
    text, html = mail.render(failure.TEMPLATE, f=failure.facts(context))
    for body in (text, html):
        assert "landed files" not in body and f"gold/similar_movies partitions with ds &lt;= {DS}".replace(
            "&lt;", "<" if body is text else "&lt;") in body


# --- arrival and SMTP trouble -----------------------------------------------------------------------

def test_success_email_arrives_with_a_text_and_an_html_part(monkeypatch, mailbox, lake_url, tmp_path):
    smtp_env(monkeypatch, mailbox.port)
    previous = tmp_path / "lake" / layout.REPORTS / f"ds={PREVIOUS_DS}"
    previous.mkdir(parents=True)
    (previous / layout.RUN_SUMMARY).write_text(json.dumps(PREVIOUS))
    later = tmp_path / "lake" / layout.REPORTS / "ds=2026-11-25"  # a later date is never "previous"
    later.mkdir(parents=True)
    (later / layout.RUN_SUMMARY).write_text(json.dumps({**PREVIOUS, "ds": "2026-11-25"}))
    ti = SimpleNamespace(xcom_pull=lambda task_ids: SUMMARY if task_ids == "write_run_summary" else None)
    SuccessEmailOperator(task_id="email_success").execute({"ti": ti})
    [message] = mailbox.messages()
    assert message["To"] == "team@example.test" and message["Subject"] == success.subject(SUMMARY)
    body = parts(message)
    assert list(body) == ["text/plain", "text/html"]
    assert f"ds={PREVIOUS_DS}" in body["text/plain"] and "0.9012" in body["text/html"]
    assert "2026-11-25" not in body["text/plain"]
    assert SUMMARY["sample_recommendations"]["1"][0]["title"] in body["text/plain"], "UTF-8 titles survive"


def test_failure_notifier_email_arrives_with_both_parts(monkeypatch, mailbox):
    smtp_env(monkeypatch, mailbox.port)
    # This subject is one Python's header folding once mangled (a leading space after the round trip).
    context = fake_failure_context(RuntimeError("Spark driver down"), task_id="check_training_data", map_index=-1)
    FailureEmail()(context)
    [message] = mailbox.messages()
    assert message["To"] == "oncall@example.test"
    assert message["Subject"] == f"[movielens] FAILED movielens_daily.check_training_data for {DS} (try 3)"
    body = parts(message)
    assert "RuntimeError: Spark driver down" in body["text/plain"] and "RuntimeError: Spark driver down" in body["text/html"]


@pytest.mark.parametrize("server", ["down", "silent"])
def test_smtp_down_or_silent_is_logged_never_raises_and_ends_in_bounded_time(monkeypatch, caplog, server, request, lake_url):
    port = free_port() if server == "down" else request.getfixturevalue("silent_smtp_port")
    smtp_env(monkeypatch, port, timeout=1, retry_limit=1)
    ti = SimpleNamespace(xcom_pull=lambda task_ids: SUMMARY)
    started = time.monotonic()
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="success email NOT sent"):
        SuccessEmailOperator(task_id="email_success").execute({"ti": ti})
    FailureEmail()(fake_failure_context(RuntimeError("boom")))
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"two emails against a {server} server took {elapsed:.1f} s"
    assert f"success email for movielens_daily {DS} NOT sent" in caplog.text
    assert f"failure email for movielens_daily.route_other_files {DS} NOT sent" in caplog.text
