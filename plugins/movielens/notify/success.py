"""The success email of a daily run: data quality, this run's metrics next to the previous run's,
the top recommendations of the configured users, and links to the Airflow run, the Data Docs and the
run's report.

The previous run is the latest earlier ds with a run summary in the lake (a date whose run failed has
none and is passed over). Sent by :class:`movielens.notify.SuccessEmailOperator`, the last task of the
DAG; like every email it never raises (:func:`movielens.notify.mail.send`).
"""

from __future__ import annotations

import logging
from typing import Any

from movielens import config
from movielens.lake import Lake
from movielens.notify import mail
from movielens.report import model_order, quality_metrics

log = logging.getLogger(__name__)

TEMPLATE = "success_email"
SUBJECT = "[movielens] {dag_id} {ds}: {files_validated} files validated, {files_rejected} rejected"


def subject(summary: dict[str, Any]) -> str:
    return SUBJECT.format(**summary)


def metric_rows(current: dict[str, dict[str, float]], previous: dict[str, dict[str, float]] | None) -> list[dict[str, str]]:
    """One row per model and quality metric of this run: its value, the previous run's and the change."""
    rows = []
    for model in model_order(current):
        for metric in quality_metrics(current[model]):
            value = current[model][metric]
            before = (previous or {}).get(model, {}).get(metric)
            rows.append({
                "model": model,
                "metric": metric,
                "value": f"{value:.4f}",
                "previous": "" if before is None else f"{before:.4f}",
                "change": "" if before is None else f"{value - before:+.4f}",
            })
    return rows


def tuning_text(summary: dict[str, Any]) -> str | None:
    """Where the models' parameters came from (the summary's ``tuning``), in a sentence; None if unknown."""
    tuning = summary.get("tuning") or {}
    action, every = tuning.get("action"), tuning.get("tune_every_days")
    schedule = f" (tuning every {every} days)" if every and every > 1 else ""
    if action == "tune":
        return "Model parameters: tuned in this run" + schedule + "."
    if action == "off":
        return "Model parameters: as configured (tuning off)."
    if action == "reuse":
        return (f"Model parameters: reused from ds={tuning.get('source_ds')}, whose tuning chose them{schedule}; "
                "no tuning in this run.")
    return None


def _fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def loop_lines(summary: dict[str, Any]) -> list[str]:
    """The daily loop's checks in sentences: the next-day backtest, the publish gate, what landed."""
    lines = []
    backtest, publication, drift = (summary.get(key) or {} for key in ("backtest", "publication", "drift"))
    if backtest.get("status") == "scored":
        k, served, popular = backtest["k"], backtest["lists"]["served"], backtest["lists"]["popularity"]
        lines.append(
            f"Backtest: the lists served since ds={backtest['served_ds']} against the {backtest['new_pairs']} new "
            f"ratings of {summary['ds']} ({served['users_with_new_ratings']} users, {served['fallback_users']} of them "
            f"unknown to the served model, answered with the popularity fallback): NDCG@{k} "
            f"{_fmt(served[f'ndcg_at_{k}'])} (popularity {_fmt(popular[f'ndcg_at_{k}'])}), precision@{k} "
            f"{_fmt(served[f'precision_at_{k}'])} (popularity {_fmt(popular[f'precision_at_{k}'])})"
            + (f"; over the {known['evaluated_users']} users the served model knows, NDCG@{k} "
               f"{_fmt(known[f'ndcg_at_{k}'])} (popularity {_fmt(popular_known[f'ndcg_at_{k}'])})"
               if (known := backtest["lists"].get("served_known")) and (popular_known := backtest["lists"].get(
                   "popularity_known")) else "") + ".")
    elif backtest:
        lines.append(f"Backtest: {backtest.get('status')}.")
    if publication:
        verdict = "published: these lists are now served" if publication.get("published") else \
            f"HELD BACK: the lists of ds={publication.get('served_ds')} stay served"
        lines.append(f"Publish gate: {verdict} ({'; '.join(publication.get('reasons', []))}).")
    if drift:
        m = drift.get("metrics", {})
        lines.append(
            f"Landed: {m.get('ratings_landed', 0):,} ratings (trailing median {_fmt(m.get('trailing_median'), 0)} "
            f"over {m.get('trailing_dates', 0)} date(s)), {m.get('new_users', 0):,} new users, "
            f"{m.get('new_movies', 0):,} new movies, rating PSI {_fmt(m.get('rating_psi'), 3)}.")
        lines += [f"Data alert: {alert}." for alert in drift.get("alerts", [])]
    return lines


def values(summary: dict[str, Any], previous: dict[str, Any] | None, previous_error: str | None = None) -> dict[str, Any]:
    """What the templates show. ``previous_error``: why the earlier summaries could not be read, if so."""
    return {
        "s": summary,
        "previous": previous and {"ds": previous["ds"],
                                  "report": previous.get("links", {}).get("report") or previous.get("outputs", {}).get("report"),
                                  "run_summary": previous.get("outputs", {}).get("run_summary")},
        "previous_error": previous_error,
        "metrics": metric_rows(summary.get("metrics", {}), previous.get("metrics", {}) if previous else None),
        "tuning": tuning_text(summary),
        "loop": loop_lines(summary),
    }


def send_success_email(summary: dict[str, Any]) -> bool:
    """Email the run's summary to ``MOVIELENS_EMAIL_TO``; True if sent. Never raises on mail trouble."""
    settings = config.load()
    previous, previous_error = None, None
    try:
        earlier = Lake.from_settings(settings).run_summaries_before(summary["ds"], 1)
        previous = earlier[-1] if earlier else None
    except Exception as err:  # noqa: BLE001 - the email still goes out, saying the comparison is missing
        previous_error = f"{type(err).__name__}: {err}"
        log.warning("earlier run summaries before %s not readable: %s", summary["ds"], previous_error)
    return mail.send(what=f"success email for {summary['dag_id']} {summary['ds']}", template=TEMPLATE,
                     values=values(summary, previous, previous_error), subject=subject(summary),
                     to=settings.email_to, from_email=settings.email_from, conn_id=settings.smtp_conn_id)
