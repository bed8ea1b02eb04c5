"""GX Data Docs (HTML) for the validations of one run, built from the stored routing records alone.

Input: the routing records of one ``ds`` (``reports/ds=D/files/<file>.json``, i.e.
``RoutingRecord.to_dict()``), or, before routing, :func:`docs_record` of a ``ValidationOutcome``. Each
record holds ``file``, ``kind``, ``ds``, ``passed``, ``rows``, ``failures``, ``notes`` and
``gx_summary`` (:func:`movielens.validation.runner._gx_summary`: the streaming evaluator's results
over EVERY row of the file, with kwargs as evaluated and up to 20 unexpected values with their lines).
Nothing re-reads the files.

Output: a GX Data Docs site, rendered by GX's own ``SiteBuilder`` (an in-memory GX context whose
validation results store holds one ``ExpectationSuiteValidationResult`` per landed file, and a
filesystem site store in ``out_dir``):

- ``index.html``: every file's validation (status, suite, run) and the suites;
- ``validations/<suite>/ds=<ds>/<ds>T000000.000000Z/<file>.html``: one page per landed file
  (:func:`validation_page`): the full-file counts of every expectation (element_count,
  unexpected_count, unexpected_percent, sampled unexpected values with their file lines);
- ``expectations/<suite>.html``: the suites of ``expectations/<kind>.json``;
- ``static/``: the few assets the pages use (GX ships 4 MB of images; the unused ones are dropped), and
  ``static/vendor/``: the scripts, stylesheets and fonts GX's pages load from CDNs (jQuery, Bootstrap,
  bootstrap-table, Font Awesome, ...), bundled from ``datadocs_assets/`` (:func:`bundle_assets`), so the
  index's list and the pages' icons work with no internet (about 1 MB per date).

A file rejected before any expectation ran (``empty_file``, ``binary``, ``not_utf8``, ...) still gets
its page: its failures are failed table-level results (an exception saying which file-level check
stopped it, or the observed header / a row count of 0 where that is what failed). A file-level
failure of a file whose suite did run (``column_count``, ``blank_line``, ``truncated_last_line``,
``gx_disagreement``) is added the same way, so a rejected file never shows as all green.

The HTML is written to a local directory; :func:`copy_tree` copies it under an ``ObjectStoragePath``
(``file://``, ``s3://``, ``abfs://``), e.g. ``reports/ds=D/data_docs/``. Same records -> same bytes
(run name ``ds=<ds>``, run time midnight UTC of ``ds``, batch id the file name, a fixed context id).

GX is imported inside the functions only (``import great_expectations`` takes seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from movielens.validation.model import FILE_KINDS

__all__ = ["SITE_NAME", "build_data_docs", "copy_tree", "docs_record", "record_page", "validation_page"]

log = logging.getLogger(__name__)

SITE_NAME = "movielens"
#: The id of the GX context that renders (GX writes it into the pages; a random one would differ per build).
DATA_CONTEXT_ID = "6d6f7669-656c-656e-732d-646174612d64"
#: Suite name of a file whose kind is unknown (no suite applies; its page shows why).
NO_SUITE = "movielens_unknown_kind"
LINE_COLUMN = "line"
_TABLE_TYPES = ("expect_table_columns_to_match_ordered_list", "expect_table_row_count_to_be_between")
_COLUMNS_TYPE = "expect_table_columns_to_match_ordered_list"
_ROWS_TYPE = "expect_table_row_count_to_be_between"
_BUILD_LOCK = threading.Lock()
#: The CDN assets of GX's pages, vendored (``tools/vendor_datadocs_assets.py`` wrote them and the manifest).
ASSETS_DIR = Path(__file__).with_name("datadocs_assets")
VENDOR = "static/vendor"
#: Where GX's navbar takes its logo from; GX copies the same image into the site.
GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/(logo-long\.png)\?[^\"']*")
_STATIC_REF = re.compile(r'\b(src|href)="(?:\./|(?:\.\./)+)static/')
_ASSET_TAG = re.compile(r"<(script|link|img)\b[^>]*>", re.I)
_REMOTE_REF = re.compile(r"""\b(?:src|href)\s*=\s*["'](https?:)?//""", re.I)
_VEGA = re.compile(r"<script\b[^>]*src=\"https://cdn\.jsdelivr\.net/npm/vega(?:-lite|-embed)?@\d+\"[^>]*></script>\s*")


def docs_record(file: str, outcome, ds: str | dt.date) -> dict[str, Any]:
    """A record for :func:`build_data_docs` from a ``ValidationOutcome`` (the fields a routing record has)."""
    return {"file": file, "ds": str(ds), **outcome.to_dict()}


def _run_time(ds: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(ds), dt.time(0), tzinfo=dt.timezone.utc)


def _suite_name(record: Mapping[str, Any], suites: Mapping[str, dict]) -> str:
    summary = record.get("gx_summary") or {}
    if summary.get("suite"):
        return summary["suite"]
    kind = record.get("kind")
    if kind in suites:
        return suites[kind].get("name", kind)
    return NO_SUITE


def record_page(record: Mapping[str, Any], ds: str, suites_dir: Path | None = None) -> str:
    """Path of a routing record's validation page relative to the site root."""
    kinds = [record["kind"]] if record.get("kind") in FILE_KINDS else []
    return validation_page(record["file"], _suite_name(record, _load_suites(kinds, suites_dir)), ds)


def validation_page(file: str, suite_name: str, ds: str) -> str:
    """Path of a file's validation page relative to the site root (as GX's site store names it)."""
    stamp = _run_time(ds).strftime("%Y%m%dT%H%M%S.%fZ")
    return "/".join(["validations", *suite_name.split("."), f"ds={ds}", stamp, f"{file}.html"])


# --- records -> GX validation results ----------------------------------------------------------


def _percent(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return 100.0 * part / whole


def _display_kwargs(kwargs: Mapping[str, Any], suite_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """kwargs for the page: a parameter left as ``{"$PARAMETER": name}`` (a collection of thousands of
    values, e.g. ``known_movie_ids``) is shown as one line saying what it held."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value:
            name = value["$PARAMETER"]
            held = str(suite_parameters.get(name, "given at validation time")).strip("<>")
            text = f"suite parameter {name}: {held}"
            value = [text] if key in ("value_set", "column_list", "type_list") else text
        out[key] = value
    return out


def _map_result(entry: Mapping[str, Any], label: str) -> dict[str, Any]:
    """GX's SUMMARY result of a column map / uniqueness expectation, from the full-file counts."""
    n = entry.get("element_count") or 0
    unexpected = entry.get("unexpected_count") or 0
    missing = entry.get("missing_count") or 0
    values = list(entry.get("partial_unexpected_list") or [])
    lines = list(entry.get("partial_unexpected_lines") or [])
    counts = Counter("\0none" if v is None else str(v) for v in values)
    shown = {("\0none" if v is None else str(v)): v for v in values}
    partial_counts = [
        {"value": shown[key], "count": count}
        for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    result: dict[str, Any] = {
        "element_count": n,
        "unexpected_count": unexpected,
        "unexpected_percent": entry.get("unexpected_percent", _percent(unexpected, n - missing)),
        "partial_unexpected_list": values,
        "missing_count": missing,
        "missing_percent": _percent(missing, n),
        "unexpected_percent_total": _percent(unexpected, n),
        "unexpected_percent_nonmissing": _percent(unexpected, n - missing),
        "partial_unexpected_counts": partial_counts,
    }
    if values and len(lines) == len(values):
        # Rendered by GX as a table: value, count among the samples, and the file lines.
        result["unexpected_index_list"] = [{label: v, LINE_COLUMN: line} for v, line in zip(values, lines)]
        result["unexpected_index_column_names"] = [LINE_COLUMN]
    return result


def _expectation_results(record, suite_doc):
    """(results, header) of a file whose suite ran: one GX result per expectation, full-file counts."""
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    summary = record["gx_summary"]
    params = summary.get("suite_parameters") or {}
    metas = {(e.get("meta") or {}).get("check"): e for e in (suite_doc or {}).get("expectations", [])}
    results, header = [], None
    for entry in summary.get("results", []):
        etype = entry["expectation_type"]
        from_suite = metas.get(entry["check"]) or {}
        kwargs = entry.get("kwargs")
        if kwargs is None:  # a record from before kwargs were stored: the suite's, as written
            kwargs = dict(from_suite.get("kwargs") or {})
        meta = dict(from_suite.get("meta") or {"check": entry["check"]})
        config = ExpectationConfiguration(
            type=etype, kwargs=_display_kwargs(kwargs, params), meta=meta,
            severity=from_suite.get("severity", "critical"),
        )
        if etype in _TABLE_TYPES:
            observed = entry.get("observed_value")
            if etype == _COLUMNS_TYPE:
                observed = list(observed or [])
                header = observed
            result = {"observed_value": observed}
        else:
            label = entry.get("column") or ", ".join(kwargs.get("column_list") or []) or "value"
            result = _map_result(entry, label)
        results.append(ExpectationValidationResult(success=bool(entry["success"]), expectation_config=config,
                                                   result=result, meta={"check": entry["check"]}))
    return results, header


def _table_expectation(suite_doc, etype: str) -> tuple[dict, dict]:
    for e in (suite_doc or {}).get("expectations", []):
        if e.get("type") == etype:
            return dict(e.get("kwargs") or {}), dict(e.get("meta") or {})
    return ({"column_list": []} if etype == _COLUMNS_TYPE else {"min_value": 1}), {}


def _file_check_results(failures, suite_doc, header, *, suite_ran: bool):
    """Failed table-level GX results for the failures no expectation result shows (file-level checks)."""
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from movielens.validation import filechecks as fc

    results = []
    columns_kwargs, columns_meta = _table_expectation(suite_doc, _COLUMNS_TYPE)
    rows_kwargs, rows_meta = _table_expectation(suite_doc, _ROWS_TYPE)
    expected = list(columns_kwargs.get("column_list") or [])

    def config(etype, kwargs, meta, check):
        return ExpectationConfiguration(type=etype, kwargs=kwargs, meta={**meta, "file_check": check})

    for failure in failures:
        check, message = failure.get("check", "?"), failure.get("message", "")
        examples = failure.get("examples") or []
        where = "; ".join(f"line {e.get('line')}: {e.get('value')!r}" for e in examples[:5])
        if check == fc.COLUMNS and not suite_ran:
            found = fc.parse_header(str(examples[0]["value"]).encode("utf-8")) if examples else []
            results.append(ExpectationValidationResult(
                success=False, expectation_config=config(_COLUMNS_TYPE, columns_kwargs, columns_meta, check),
                result={"observed_value": found}, meta={"check": check, "message": message}))
            continue
        if check in (fc.EMPTY_FILE, fc.HEADER_ONLY) and not suite_ran:
            if check == fc.EMPTY_FILE:  # no header either
                results.append(ExpectationValidationResult(
                    success=False, expectation_config=config(_COLUMNS_TYPE, columns_kwargs, columns_meta, check),
                    result={"observed_value": []}, meta={"check": check, "message": message}))
            results.append(ExpectationValidationResult(
                success=False, expectation_config=config(_ROWS_TYPE, rows_kwargs, rows_meta, check),
                result={"observed_value": 0}, meta={"check": check, "message": message}))
            continue
        stop = "" if suite_ran else "; no expectation of the suite was evaluated"
        text = f"file-level check {check} failed: {message}{stop}"
        if expected:
            on = config(_COLUMNS_TYPE, columns_kwargs, columns_meta, check)
            observed: Any = list(header or [])
        else:  # no suite (unknown kind): GX cannot render a column list expectation without columns
            on = config(_ROWS_TYPE, rows_kwargs, rows_meta, check)
            observed = None
        results.append(ExpectationValidationResult(
            success=False, expectation_config=on,
            result={"observed_value": observed},
            exception_info={"raised_exception": True, "exception_message": text,
                            # GX's page cannot render an exception without a traceback text.
                            "exception_traceback": text + (f"\nexamples: {where}" if where else "")},
            meta={"check": check, "message": message, "examples": examples[:20]}))
    return results


def _validation_result(record: Mapping[str, Any], ds: str, suites: Mapping[str, dict], gx_version: str):
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier

    file = record["file"]
    kind = record.get("kind")
    suite_doc = suites.get(kind)
    summary = record.get("gx_summary")
    suite_name = _suite_name(record, suites)
    failures = list(record.get("failures") or [])
    if summary:
        results, header = _expectation_results(record, suite_doc)
        shown = {r.meta.get("check") for r in results}
        results[:0] = _file_check_results([f for f in failures if f.get("check") not in shown], suite_doc,
                                          header, suite_ran=True)
    else:
        results = _file_check_results(failures, suite_doc, None, suite_ran=False)
    ok = sum(1 for r in results if r.success)
    markers = {
        "rows": record.get("rows"),
        "zone": record.get("zone"),
        "bytes": record.get("bytes"),
        "sha256": record.get("sha256"),
        "validated_by": (summary or {}).get("engine", "file-level checks (the suite did not run)"),
        "gx_rows": (summary or {}).get("gx_rows"),
        "gx_disagreements": (summary or {}).get("gx_disagreements"),
        "left_out": ", ".join((summary or {}).get("left_out") or []) or None,
        "failures": "; ".join(f"{f.get('check')}: {f.get('message')}" for f in failures) or None,
        "notes": "; ".join(record.get("notes") or []) or None,
    }
    if summary and suite_doc is not None and summary.get("suite_sha256") and summary["suite_sha256"] != suite_doc.get("_sha256"):
        markers["suite_changed"] = "expectations/%s.json changed since this validation; descriptions are today's" % kind
    meta = {
        "great_expectations_version": (summary or {}).get("gx_version") or gx_version,
        "run_id": RunIdentifier(run_name=f"ds={ds}", run_time=_run_time(ds)),
        "validation_time": _run_time(ds).strftime("%Y%m%dT%H%M%S.%fZ"),
        "batch_spec": {"data_asset_name": file, "path": f"landing/ds={ds}/{file}", "ds": ds, "kind": kind},
        "batch_markers": {k: v for k, v in markers.items() if v is not None},
        "active_batch_definition": {"datasource_name": "lake", "data_connector_name": "landing",
                                    "data_asset_name": file, "batch_identifiers": {"ds": ds, "file": file}},
        "movielens": {"passed": bool(record.get("passed")), "failures": failures, "notes": list(record.get("notes") or [])},
    }
    return suite_name, ExpectationSuiteValidationResult(
        success=bool(record.get("passed")),
        results=results,
        suite_name=suite_name,
        suite_parameters=dict((summary or {}).get("suite_parameters") or {}),
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": ok,
            "unsuccessful_expectations": len(results) - ok,
            "success_percent": 100.0 * ok / len(results) if results else None,
        },
        meta=meta,
    )


def _load_suites(kinds: Iterable[str], suites_dir: Path | None) -> dict[str, dict]:
    import hashlib

    from movielens.validation.suites import suite_path

    out = {}
    for kind in sorted(set(kinds)):
        if kind not in FILE_KINDS:
            continue
        text = suite_path(kind, suites_dir).read_text(encoding="utf-8")
        doc = json.loads(text)
        doc["_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        out[kind] = doc
    return out


# --- the site ----------------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Collects the errors GX's site builder logs (it logs a page it cannot render and goes on)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _prune_static(site: Path) -> None:
    """Drop the assets under static/ that no page or stylesheet names (GX copies 4 MB of them)."""
    static = site / "static"
    if not static.is_dir():
        return
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(site.rglob("*"))
                     if p.is_file() and p.suffix in (".html", ".css"))
    for path in sorted(static.rglob("*")):
        if path.is_file() and path.name not in text:
            path.unlink()
    for path in sorted(static.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _vendored() -> list[dict[str, Any]]:
    """The manifest's files: ``file`` (under ``datadocs_assets/``), ``urls`` (the CDN URLs GX's templates write
    for it; none for a font that a stylesheet loads), ``package``, ``sha256``."""
    return json.loads((ASSETS_DIR / "manifest.json").read_text())["files"]


def _local_asset(tag: str, up: str, urls: Mapping[str, str], used: set[str]) -> str:
    """``tag`` loading its vendored copy (a path from a page ``up`` below the site) if it names a CDN URL."""
    for url, file in urls.items():
        if f'"{url}"' in tag:
            used.add(file)
            tag = tag.replace(f'"{url}"', f'"{up}/{VENDOR}/{file}"')
            return re.sub(r'\s+(?:integrity|crossorigin)(?:="[^"]*")?', "", tag)
    return tag


def bundle_assets(site: Path) -> None:
    """Make every page of ``site`` load its scripts, stylesheets and images from the site itself.

    Each CDN URL of the manifest becomes the relative path of its vendored copy under ``static/vendor/``
    (``integrity``/``crossorigin`` dropped: they would block a ``file://`` page); vega's three scripts are
    dropped from pages that draw no chart (no page of ours does). Raises ``RuntimeError`` naming the page
    and tag when anything else would still load from the internet (a GX upgrade that adds an asset).
    """
    vendored = _vendored()
    urls = {url: entry["file"] for entry in vendored for url in entry["urls"]}
    used: set[str] = set()
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        up = os.path.relpath(site, page.parent).replace(os.sep, "/")
        if "vegaEmbed(" not in text:
            text = _VEGA.sub("", text)
        text = GX_LOGO.sub(f"{up}/static/images/\\1", text)
        # GX writes the favicon of a validation page one folder too shallow: every page's own depth instead.
        text = _STATIC_REF.sub(f'\\1="{up}/static/', text)
        text = _ASSET_TAG.sub(lambda tag, up=up: _local_asset(tag.group(0), up, urls, used), text)
        remote = [t.group(0) for t in _ASSET_TAG.finditer(text) if _REMOTE_REF.search(t.group(0))]
        if remote:
            raise RuntimeError(f"Data Docs page {page.relative_to(site)} would load from the internet: {remote}; "
                               f"vendor it (tools/vendor_datadocs_assets.py)")
        page.write_text(text, encoding="utf-8")
    # A used stylesheet's fonts go with it (they sit in its package's folder).
    fonts = {e["file"] for e in vendored if not e["urls"] and any(e["file"].split("/")[0] == u.split("/")[0] for u in used)}
    for file in sorted(used | fonts):
        target = site / VENDOR / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ASSETS_DIR / file, target)


def _view(class_name: str) -> dict[str, str]:
    return {"module_name": "movielens.validation.gxsite", "class_name": class_name}


def build_data_docs(
    records: Iterable[Mapping[str, Any]],
    out_dir: Path,
    *,
    ds: str | dt.date | None = None,
    suites_dir: Path | None = None,
) -> Path:
    """Render GX Data Docs for one run's validations into ``out_dir``; returns ``out_dir/index.html``.

    ``records``: routing records (``reports/ds=D/files/*.json``) or :func:`docs_record` dicts, one per
    landed file, all of one ``ds`` (``ds`` defaults to theirs). ``out_dir`` must not exist or be
    empty. Raises ``RuntimeError`` when GX could not render a page (GX itself only logs it).
    """
    records = sorted((dict(r) for r in records), key=lambda r: r["file"])
    dates = {str(r["ds"]) for r in records if r.get("ds")}
    if ds is None:
        if len(dates) != 1:
            raise ValueError(f"give ds: the records hold dates {sorted(dates) or 'none'}")
        ds = dates.pop()
    ds = str(ds)
    if dates - {ds}:
        raise ValueError(f"records of other dates than {ds}: {sorted(dates - {ds})}")
    names = [r["file"] for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"two records for one file: {sorted(n for n in names if names.count(n) > 1)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)

    suites = _load_suites([r.get("kind") for r in records if r.get("kind")], suites_dir)

    import great_expectations as gx
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.data_context.data_context.ephemeral_data_context import EphemeralDataContext
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.exceptions import DataContextRequiredError

    from movielens.validation.gxrun import _GX_LOCK

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        data_context_id=DATA_CONTEXT_ID,
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "module_name": "movielens.validation.gxsite",
                    "class_name": "SortedTupleFilesystemStoreBackend",
                    "base_directory": str(out_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": _view("DeterministicIndexPageView")},
                "site_section_builders": {
                    "expectations": {"view": _view("DeterministicPageView")},
                    "validations": {"view": _view("DeterministicPageView")},
                    "profiling": "False",  # (a falsey string: None makes GX's SiteBuilder fail)
                },
            }
        },
    )
    errors = _Errors()
    gx_logger = logging.getLogger("great_expectations")
    pages: dict[str, str] = {}
    # GX objects (suites, results) look up "the current project" in a process-wide global: the docs
    # context is made current for the build and the previous one (movielens.validation.gxrun's) put back.
    with _GX_LOCK, _BUILD_LOCK:
        try:
            previous = project_manager.get_current_project()
        except DataContextRequiredError:
            previous = None
        context = EphemeralDataContext(project_config=config)
        project_manager.set_project(context)
        gx_logger.addHandler(errors)
        try:
            for kind, doc in suites.items():
                context.suites.add(ExpectationSuite(**{k: v for k, v in doc.items() if k != "_sha256"}))
            for record in records:
                suite_name, result = _validation_result(record, ds, suites, gx.__version__)
                key = ValidationResultIdentifier(
                    expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                    run_id=result.meta["run_id"],
                    batch_identifier=record["file"],
                )
                context.validation_results_store.set(key, result)
                pages[record["file"]] = validation_page(record["file"], suite_name, ds)
            context.build_data_docs(site_names=[SITE_NAME])
        finally:
            gx_logger.removeHandler(errors)
            project_manager.set_project(previous)
    index = out_dir / "index.html"
    missing = [page for page in pages.values() if not (out_dir / page).is_file()]
    if errors.messages or missing or not index.is_file() or index.stat().st_size == 0:
        detail = "\n".join(m[:2000] for m in errors.messages)
        raise RuntimeError(f"GX Data Docs for ds={ds} incomplete (pages not written: {missing}):\n{detail}")
    _prune_static(out_dir)
    bundle_assets(out_dir)
    return index


def copy_tree(local_dir: Path, target, *, remove_stale: bool = True) -> list[str]:
    """Copy the files under ``local_dir`` to the same relative paths under ``target``.

    ``target``: an ``ObjectStoragePath`` (``file://``, ``s3://``, ``abfs://``) or a ``pathlib.Path``.
    The pages go first and ``index.html`` files last, so the index never links a page not yet there.
    ``remove_stale``: then delete files under ``target`` that the new tree does not have (a rerun of a
    date with other files). Returns the relative paths copied.
    """
    local_dir = Path(local_dir)
    files = sorted((p for p in local_dir.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == "index.html", p.relative_to(local_dir).as_posix()))
    copied = []
    for path in files:
        rel = path.relative_to(local_dir).as_posix()
        destination = target.joinpath(*rel.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as reader, destination.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
        copied.append(rel)
    if remove_stale and target.exists():
        keep = set(copied)
        root = str(target).rstrip("/")
        for path in sorted(target.rglob("*"), key=str):
            rel = str(path)[len(root):].lstrip("/")
            if rel not in keep and path.is_file():
                path.unlink()
    return copied
