"""What the daily DAG's glue tasks do. The DAG file only wires these together.

Every function takes the run's ``ds`` and touches only that date's partitions (plus validated history
<= ds), so each task can be rerun or backfilled alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from urllib.parse import quote
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from movielens import api, config, lineage
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common import spec

log = logging.getLogger(__name__)

# Movies are validated first: ratings and tags are checked against the movies known by then.
KIND_ORDER = {"movies": 0, "links": 1, "ratings": 2, "tags": 3}


class NoValidatedRatings(AirflowFailException):
    """No ratings file up to ds passed validation. Fails the task at once: retrying cannot help."""


def find_landed_files(ds: str) -> dict[str, list[str]]:
    """Names of the files in ``landing/ds=D/``: movies files and all the others, each sorted."""
    lake = Lake.from_settings(config.load())
    names = [p.name for p in lake.landed_files(ds)]
    movies = sorted(n for n in names if layout.file_kind(n) == "movies")
    others = sorted((n for n in names if layout.file_kind(n) != "movies"), key=lambda n: (KIND_ORDER.get(layout.file_kind(n) or "", 9), n))
    log.info("landed for ds=%s: %d movies files, %d others", ds, len(movies), len(others))
    return {"movies": movies, "others": others}


def known_movie_ids(lake: Lake, ds: str) -> set[int]:
    """movieIds of every validated movies file with partition date <= ds."""
    import pyarrow.csv as pacsv

    ids: set[int] = set()
    for date in lake.validated_dates(ds):
        for path in lake.files(layout.VALIDATED, date):
            if layout.file_kind(path.name) != "movies":
                continue
            with path.open("rb") as handle:
                table = pacsv.read_csv(handle, convert_options=pacsv.ConvertOptions(include_columns=["movieId"]))
            ids.update(int(v) for v in table.column("movieId").to_pylist() if v is not None)
    return ids


def claim_date(ds: str, run_id: str, dag_id: str = "movielens_daily") -> dict[str, Any]:
    """This run's claim on ``ds`` (:meth:`Lake.claim_date`), taken before it writes the date's zones; raises
    ``DateClaimed`` while another run, of this Airflow or another one on the lake, holds it."""
    import socket

    settings = config.load()
    holder = f"{dag_id} on {socket.gethostname()} ({settings.airflow_base_url})"
    return Lake.from_settings(settings).claim_date(ds, run_id, holder)


def release_date(ds: str, run_id: str) -> bool:
    """Drop this run's claim on ``ds`` (its run is over: the summary is written, or the run failed)."""
    return Lake.from_settings(config.load()).release_date(ds, run_id)


def land(ds: str, run_id: str, mode: str) -> dict[str, Any]:
    """The run's first step: claim the date, then land its files (``movielens.ingest.landing``)."""
    from movielens.ingest import landing

    claim_date(ds, run_id)
    settings = config.load()
    landed = landing.land(settings, ds, mode)
    lake = Lake.from_settings(settings)
    lineage.record(outputs=[lake.uri(lake.zone(layout.LANDING, ds) / name) for name in landed["files"]])
    return landed


def process_landed_file(ds: str, run_id: str, name: str) -> dict[str, Any]:
    """Validate one landed file, then route it to validated/ or rejected/ (copy, verify, record)."""
    from movielens.validation import validate_file

    claim_date(ds, run_id)  # (again: a route cleared on its own, after its run released the date)
    settings = config.load()
    lake = Lake.from_settings(settings)
    landed = lake.zone(layout.LANDING, ds) / name
    if not landed.exists():
        # Already routed by an earlier try that died after clearing landing: report its record.
        record_path = lake.record_path(ds, name)
        if record_path.exists():
            log.info("%s was already routed; keeping its record", name)
            return lake.read_json(record_path)
        raise FileNotFoundError(f"{landed} is gone and no routing record exists for it")

    kind = layout.file_kind(name)
    started = time.monotonic()
    if kind is None:
        details = {
            "rows": None,
            "failures": [
                {
                    "check": "file_kind",
                    "message": (f"{name!r} is a compressed file ({name.rsplit('.', 1)[-1]}): land the "
                                f"uncompressed .csv (MovieLens files are plain CSV)"
                                if name.lower().endswith(layout.COMPRESSED_SUFFIXES) else
                                f"cannot tell the file's kind from its name {name!r}: expected a .csv "
                                f"whose name starts with one of {', '.join(layout.FILE_KINDS)}"),
                    "examples": [],
                }
            ],
        }
        passed = False
    else:
        known = known_movie_ids(lake, ds) if kind in ("ratings", "tags") else None
        outcome = validate_file(landed, kind, dt.date.fromisoformat(ds), known_movie_ids=known)
        details = outcome.to_dict()
        passed = outcome.passed
    validate_s = time.monotonic() - started
    details["timings_s"] = {"validate": round(validate_s, 3)}
    record = lake.route(landed, ds, passed=passed, run_id=run_id, kind=kind, details=details, policy=settings.landing_policy)
    record.timings_s["route"] = round(time.monotonic() - started - validate_s, 3)
    lake.write_json(lake.record_path(ds, name), record.to_dict())
    lineage.record(inputs=[lake.uri(landed)], outputs=[record.destination, lake.uri(lake.record_path(ds, name))]
                   + ([record.report] if record.report else []))
    verdict = "validated" if passed else "REJECTED: " + "; ".join(f["check"] for f in record.failures)
    log.info("%s -> %s (%s)", name, record.zone, verdict)
    result = record.to_dict()
    if not passed:
        from movielens.notify.incident import send_rejection_email

        result["incident_email_sent"] = send_rejection_email(result)
    return result


def check_training_data(ds: str) -> dict[str, Any]:
    """Fail clearly, before Spark starts, when no validated ratings exist up to ds."""
    lake = Lake.from_settings(config.load())
    dates = [
        date
        for date in lake.validated_dates(ds)
        if any(layout.file_kind(p.name) == "ratings" for p in lake.files(layout.VALIDATED, date))
    ]
    if not dates:
        rejected = [r["file"] for r in lake.records(ds) if not r["passed"] and r.get("kind") == "ratings"]
        why = f" (rejected today: {', '.join(rejected)}; see rejected/ds={ds}/)" if rejected else ""
        raise NoValidatedRatings(f"no validated ratings file with ds <= {ds}: refusing to train{why}")
    lineage.record(inputs=[lake.uri(lake.zone(layout.VALIDATED, date)) for date in dates])
    return {"validated_ratings_dates": dates}


def build_data_docs(ds: str) -> dict[str, Any]:
    """GX Data Docs of every file routed for ds, rendered locally, then copied to reports/ds=D/data_docs/."""
    import tempfile

    from movielens.validation import build_data_docs as render, copy_tree

    lake = Lake.from_settings(config.load())
    records = lake.records(ds)
    if not records:
        log.info("no file was routed for ds=%s: no Data Docs to build", ds)
        return {"data_docs": None, "files": 0}
    target = lake.zone(layout.REPORTS, ds) / layout.DATA_DOCS
    with tempfile.TemporaryDirectory(prefix="movielens-datadocs-") as tmp:
        index = render(records, Path(tmp) / layout.DATA_DOCS, ds=ds)
        copy_tree(index.parent, target)
    log.info("Data Docs for %d files: %s", len(records), target / "index.html")
    lineage.record(inputs=[lake.uri(lake.record_path(ds, r["file"])) for r in records], outputs=[lake.uri(target)])
    return {"data_docs": lake.uri(target / "index.html"), "files": len(records)}


def sample_recommendations(lake: Lake, ds: str, user_ids: list[int], k: int) -> dict[str, list[dict]]:
    if not user_ids or not lake.table(layout.GOLD, "recommendations", ds).exists():
        return {}
    table = lake.read_table(layout.GOLD, "recommendations", ds, filters=[("userId", "in", user_ids), ("rank", "<=", k)])
    out: dict[str, list[dict]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["userId"], r["rank"])):
        out.setdefault(str(row["userId"]), []).append(
            {"rank": row["rank"], "movieId": row["movieId"], "title": row["title"], "score": round(float(row["score"]), 4)}
        )
    return out


def _read_if_present(lake: Lake, path) -> dict[str, Any]:
    return lake.read_json(path) if path.exists() else {}


def build_run_summary(
    ds: str, run_id: str, dag_id: str, landing: dict | None = None, compute: dict | None = None,
    serving: dict | None = None,
    run_params: dict | None = None,
) -> dict[str, Any]:
    """Collect routing records, what the Spark job ran with and wrote, and sample recommendations.

    ``compute``: the Spark job's result (``backend``, and a cluster backend's run id and page URL).
    ``serving``: what ``serving.publish`` returned, or None when nothing was published.
    ``run_params``: the run's params; the settings they set are ``param_overrides``. ``settings`` and
    ``tuning`` are the job spec the Spark job recorded in ``models/ds=D/params.json`` (``tuning``: the
    decision's action, reason and source date); timings, counts and outputs come from ``spark_job.json``.
    """
    from movielens.validation import record_page

    settings = config.load()
    lake = Lake.from_settings(settings)
    records = lake.records(ds)
    spark = _read_if_present(lake, lake.zone(layout.REPORTS, ds) / layout.SPARK_REPORT)
    params = _read_if_present(lake, lake.zone(layout.MODELS, ds) / layout.MODEL_PARAMS)
    recorded = params.get("spec", {})
    docs = lake.zone(layout.REPORTS, ds) / layout.DATA_DOCS
    docs_built = (docs / "index.html").exists()
    report = lake.zone(layout.REPORTS, ds) / layout.RUN_REPORT
    files = [
        {
            "file": r["file"],
            "kind": r.get("kind"),
            "zone": r["zone"],
            "passed": r["passed"],
            "rows": r.get("rows"),
            "bytes": r["bytes"],
            "sha256": r["sha256"],
            "destination": r["destination"],
            "reasons": [f"{f['check']}: {f['message']}" for f in r.get("failures", [])],
            "notes": r.get("notes", []),
            "report": r.get("report"),
            "data_docs": lake.uri(docs / record_page(r, ds)) if docs_built else None,
        }
        for r in records
    ]
    models = params.get("models", {})
    # The job records paths relative to the lake root: here they become the lake's URLs.
    outputs = {name: lake.uri(lake.path(rel)) for name, rel in spark.get("outputs", {}).items()}
    summary = {
        "ds": ds,
        "dag_id": dag_id,
        "run_id": run_id,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lake": lake.url,
        "landing": landing or {},
        "files": files,
        "files_validated": sum(1 for f in files if f["passed"]),
        "files_rejected": sum(1 for f in files if not f["passed"]),
        "row_counts": {
            "files": {f["file"]: f["rows"] for f in files},
            **spark.get("counts", {}),
        },
        "timings_s": {
            "validate_and_route": {r["file"]: r.get("timings_s", {}) for r in records},
            "spark": spark.get("timings_s", {}),
        },
        "param_overrides": spec.form_overrides(run_params),
        "settings": recorded.get("settings", {}),
        "tuning": {**recorded["tuning"], "tune_every_days": recorded["settings"]["tune_every_days"]} if recorded else {},
        "models": models,
        "metrics": {name: model.get("metrics", {}) for name, model in models.items()},
        "protocol": params.get("protocol", {}),
        # The daily loop's checks: yesterday's served lists against today's ratings, the publish gate's
        # decision, and the drift and volume of what landed (spark_jobs/backtest.py, gate.py, drift.py).
        "backtest": spark.get("backtest", {}),
        "publication": lake.publication(ds) or {},
        "drift": spark.get("drift", {}),
        "outputs": {
            **outputs,
            "run_summary": lake.uri(lake.zone(layout.REPORTS, ds) / layout.RUN_SUMMARY),
            "validated": lake.uri(lake.zone(layout.VALIDATED, ds)),
            "rejected": lake.uri(lake.zone(layout.REJECTED, ds)),
            "data_docs": lake.uri(docs / "index.html") if docs_built else None,
            "report": lake.uri(report) if report.exists() else None,
        },
        "compute": {k: v for k, v in (compute or {"backend": settings.compute}).items() if v is not None},
        "serving": serving or {"published": False, "reason": "MOVIELENS_SERVING_CONN_ID is not set"},
        # HTTP pages (the API of movielens.api, in Airflow's API server) of what "outputs" holds as lake URLs.
        "links": {
            "airflow_run": f"{settings.airflow_base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}",
            **{k: v for k, v in api.run_links(settings.airflow_base_url, ds).items()
               if {"report": report.exists(), "data_docs": docs_built}.get(k, True)},
            **({"spark_run": compute["url"]} if compute and compute.get("url") else {}),
        },
        "sample_recommendations": sample_recommendations(lake, ds, settings.demo_user_ids, settings.spec["top_k"]),
    }
    lake.write_json(lake.zone(layout.REPORTS, ds) / layout.RUN_SUMMARY, summary)
    read = [lake.record_path(ds, r["file"]) for r in records] + [
        lake.zone(layout.REPORTS, ds) / layout.SPARK_REPORT, lake.zone(layout.MODELS, ds) / layout.MODEL_PARAMS]
    lineage.record(inputs=[lake.uri(path) for path in read if path.exists()], outputs=[summary["outputs"]["run_summary"]])
    lake.release_date(ds, run_id)  # the run's last write to the lake: another run of the date may start
    return summary
