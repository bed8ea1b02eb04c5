"""movielens.validation.datadocs: GX Data Docs of one run, from the validation records alone.

Small CSVs in tmp_path are validated with validate_file; the docs are built from the records' JSON
(as stored in the lake: nothing re-reads the files) and the HTML is read back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from pathlib import Path

import pytest

from movielens.validation import validate_file
from movielens.validation.datadocs import (
    ASSETS_DIR, VENDOR, build_data_docs, bundle_assets, copy_tree, docs_record, validation_page,
)

DS = "2024-06-30"
RUN_DATE = dt.date.fromisoformat(DS)
TS = 1_000_000_000
RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
MOVIES = {1, 2, 3, 4, 5}
GOOD_ROWS = 1_200
BAD_ROWS = 3_000  # every 100th rating out of range: 30 of them, more than the 20 examples kept


def ratings(rows: int, bad_every: int | None = None) -> str:
    lines = []
    for i in range(1, rows + 1):
        rating = "7.5" if bad_every and i % bad_every == 0 else "4.0"
        lines.append(f"{i},{i % 5 + 1},{rating},{TS + i}\n")
    return RATINGS_HEADER + "".join(lines)


def text_of(page: Path) -> str:
    """The visible text of a page (tags, scripts and styles stripped), whitespace collapsed."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


def section(text: str, start: str, end: str) -> str:
    at = text.index(start)
    return text[at: text.index(end, at + len(start))]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Four landed files validated, their records as JSON, and the docs built from them."""
    folder = tmp_path_factory.mktemp("landing")
    files = {
        "movies.csv": "movieId,title,genres\n" + "".join(f"{m},Movie {m} (1999),Drama\n" for m in sorted(MOVIES)),
        "ratings.csv": ratings(GOOD_ROWS),
        "ratings_out_of_range.csv": ratings(BAD_ROWS, bad_every=100),
        "ratings_empty.csv": "",
    }
    records = []
    for name, content in files.items():
        path = folder / name
        path.write_text(content, encoding="utf-8")
        kind = name.split("_")[0].removesuffix(".csv")
        outcome = validate_file(path, kind, RUN_DATE, known_movie_ids=MOVIES if kind == "ratings" else None)
        # As stored in reports/ds=D/files/<name>.json and read back later.
        records.append(json.loads(json.dumps(docs_record(name, outcome, DS))))
    out = tmp_path_factory.mktemp("docs") / "data_docs"
    index = build_data_docs(records, out)
    return {"records": {r["file"]: r for r in records}, "out": out, "index": index}


def page_of(run, name: str) -> Path:
    record = run["records"][name]
    return run["out"] / validation_page(name, record["gx_summary"]["suite"] if record["gx_summary"] else f"movielens_{record['kind']}", DS)


def test_the_records_hold_what_the_docs_need(run):
    bad = run["records"]["ratings_out_of_range.csv"]
    assert bad["passed"] is False and "rating_range" in [f["check"] for f in bad["failures"]]
    entry = {r["check"]: r for r in bad["gx_summary"]["results"]}["rating_range"]
    assert entry["element_count"] == BAD_ROWS and entry["unexpected_count"] == BAD_ROWS // 100
    assert entry["kwargs"] == {"column": "rating", "min_value": 0.5, "max_value": 5.0}
    assert entry["partial_unexpected_list"] == ["7.5"] * 20  # MAX_EXAMPLES
    assert entry["partial_unexpected_lines"][:3] == [101, 201, 301]  # header is line 1
    known = {r["check"]: r for r in bad["gx_summary"]["results"]}["movie_id_known"]
    assert known["kwargs"]["value_set"] == {"$PARAMETER": "known_movie_ids"}  # not the whole id set
    assert bad["gx_summary"]["run_date"] == DS and len(bad["gx_summary"]["suite_sha256"]) == 64
    assert run["records"]["ratings_empty.csv"]["gx_summary"] is None


def test_index_and_one_page_per_file(run):
    index = run["index"]
    assert index == run["out"] / "index.html" and index.is_file()
    raw = index.read_text(encoding="utf-8")
    for name in run["records"]:
        page = page_of(run, name)
        assert page.is_file(), page
        assert name in text_of(page)
        assert page.relative_to(run["out"]).as_posix().replace("=", "%3D") in raw  # linked from the index
    assert (run["out"] / "expectations" / "movielens_ratings.html").is_file()
    # Only the static assets the pages use are kept (GX copies 4 MB of images).
    gx_static = [p for p in (run["out"] / "static").rglob("*") if p.is_file() and VENDOR not in p.as_posix()]
    assert gx_static and sum(p.stat().st_size for p in gx_static) < 100_000


def test_every_asset_of_every_page_is_in_the_site(run):
    """No page loads a script, stylesheet, image or font from the internet; each one it names is there."""
    out = run["out"]
    manifest = {e["file"]: e["sha256"] for e in json.loads((ASSETS_DIR / "manifest.json").read_text())["files"]}
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == len(run["records"]) + 3  # a page per file, two suites, the index
    for page in pages:
        tags = re.findall(r"<(?:script|link|img)\b[^>]*>", page.read_text(encoding="utf-8"))
        refs = [m for t in tags for m in re.findall(r'(?:src|href)="([^"]+)"', t)]
        assert len(refs) >= 13, (page, refs)  # GX's 12 scripts and stylesheets, the logo, the icon
        assert [r for r in refs if "//" in r or "integrity" in r] == [], page
        for ref in refs:
            assert (page.parent / ref).resolve().is_file(), (page, ref)
    vendored = sorted(p.relative_to(out / VENDOR).as_posix() for p in (out / VENDOR).rglob("*") if p.is_file())
    assert vendored == sorted(manifest)  # the fonts too: Font Awesome's stylesheet loads them
    for file in vendored:
        assert hashlib.sha256((out / VENDOR / file).read_bytes()).hexdigest() == manifest[file], file


def test_the_index_lists_the_files_with_no_internet(run, tmp_path):
    """The index's table is built by bootstrap-table in the browser: Chromium, with every request that leaves
    the site refused, shows a row per file and the pass/fail icons drawn from the bundled font."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is not installed: run `make install` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page()
            outside, errors = [], []
            page.route(re.compile(r"^(?!file:)"), lambda route: (outside.append(route.request.url), route.abort()))
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(run["index"].as_uri())
            rows = page.locator("tbody tr").filter(has_text=f"ds={DS}")  # the validations tab (not the suites)
            rows.first.wait_for(timeout=10_000)
            assert sorted(rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count())) == sorted(run["records"])
            assert page.locator(".fa-times").count() == 2 and page.locator(".fa-check-circle").count() == 2
            assert page.evaluate("[...document.fonts].some(f => f.family.includes('Font Awesome') && f.status == 'loaded')")
            assert outside == [] and errors == []
        finally:
            browser.close()


def test_a_page_that_would_load_an_unknown_asset_is_refused(tmp_path):
    (tmp_path / "index.html").write_text('<html><script src="https://cdn.example.test/new.js"></script></html>')
    with pytest.raises(RuntimeError, match=r"index.html would load from the internet: .*cdn\.example\.test/new\.js"):
        bundle_assets(tmp_path)


def test_failed_expectation_shows_full_file_counts_and_examples(run):
    text = text_of(page_of(run, "ratings_out_of_range.csv"))
    assert "Status: Failed" in text
    rating = section(text, "values must be greater than or equal to 0.5", "values must belong to this set")
    # 30 of 3000 rows: counts over the whole file, not over a sample or the examples.
    assert f"{BAD_ROWS // 100} unexpected values found" in rating
    assert f"1% of {BAD_ROWS} total rows" in rating
    assert "7.5" in rating and "101, 201, 301" in rating  # the value and its file lines
    good = text_of(page_of(run, "ratings.csv"))
    assert "Status: Succeeded" in good and "unexpected values found" not in good
    assert f"Must have greater than or equal to 1 rows. {GOOD_ROWS}" in good


def test_file_rejected_before_the_suite_still_has_its_page(run):
    text = text_of(page_of(run, "ratings_empty.csv"))
    assert "Status: Failed" in text and "ratings_empty.csv" in text
    assert "empty_file" in text
    assert "Unsuccessful Expectations 2" in text
    assert "Must have greater than or equal to 1 rows. 0" in text


@pytest.mark.parametrize("content, check, shown", [
    (b"userId,movieId,rating,timestamp\n1,1,4\x00.0,1000000000\n", "binary", "file-level check binary failed"),
    (b"userId,movieId,ratin,timestamp\n1,1,4.0,1000000000\n", "columns", "['userId', 'movieId', 'ratin', 'timestamp']"),
    (b"userId,movieId,rating,timestamp\n1,1,4.0,1000000000\n1,2,3\n", "column_count", "file-level check column_count failed"),
])
def test_file_level_failures_are_shown(tmp_path, content, check, shown):
    path = tmp_path / "ratings_x.csv"
    path.write_bytes(content)
    outcome = validate_file(path, "ratings", RUN_DATE, known_movie_ids=MOVIES)
    assert check in outcome.checks
    index = build_data_docs([docs_record(path.name, outcome, DS)], tmp_path / "docs")
    text = text_of(index.parent / validation_page(path.name, "movielens_ratings", DS))
    assert "Status: Failed" in text and shown in text


def test_a_file_of_unknown_kind_has_a_page(tmp_path):
    record = {"file": "notes.csv", "ds": DS, "kind": None, "passed": False, "rows": None, "notes": [],
              "gx_summary": None, "failures": [{"check": "file_kind", "message": "cannot tell the kind", "examples": []}]}
    index = build_data_docs([record], tmp_path / "docs")
    text = text_of(index.parent / validation_page("notes.csv", "movielens_unknown_kind", DS))
    assert "Status: Failed" in text and "file-level check file_kind failed: cannot tell the kind" in text


def test_same_records_same_html(run, tmp_path):
    again = build_data_docs(list(run["records"].values()), tmp_path / "again")
    first = {p.relative_to(run["out"]): p.read_bytes() for p in run["out"].rglob("*") if p.is_file()}
    second = {p.relative_to(again.parent): p.read_bytes() for p in again.parent.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_refuses_mixed_dates_and_a_non_empty_folder(run, tmp_path):
    records = list(run["records"].values())
    with pytest.raises(ValueError, match="other dates"):
        build_data_docs(records + [{**records[0], "file": "x.csv", "ds": "2024-07-01"}], tmp_path / "a", ds=DS)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_data_docs(records, tmp_path / "b")


def test_copy_tree_to_object_storage_replaces_stale_files(run, tmp_path):
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath((tmp_path / "lake").as_uri()) / "reports" / f"ds={DS}" / "data_docs"
    target.mkdir(parents=True, exist_ok=True)
    (target / "validations").mkdir(parents=True, exist_ok=True)
    (target / "validations" / "old.html").write_text("stale")
    copied = copy_tree(run["out"], target)
    assert copied[-1] == "index.html"  # the index goes last
    local = tmp_path / "lake" / "reports" / f"ds={DS}" / "data_docs"
    assert (local / "index.html").read_bytes() == run["index"].read_bytes()
    page = validation_page("ratings_out_of_range.csv", "movielens_ratings", DS)
    assert (local / page).read_bytes() == (run["out"] / page).read_bytes()
    assert not (local / "validations" / "old.html").exists()
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == sorted(copied)
