"""The run's HTML report, rendered from small generated gold tables in a file:// lake: every section is
there, the numbers it shows are the inputs', the plots are embedded SVG, and the same inputs give the
same bytes."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from spark_jobs.common import layout

DS, EARLIER_DS = "2026-11-20", "2026-11-19"
METRICS = [("als_explicit", "rmse", 0.8712), ("als_explicit", "mae", 0.6699), ("als_explicit", "ndcg_at_10", 0.0421),
           ("ease_ials", "ndcg_at_10", 0.3012), ("ease_ials", "precision_at_10", 0.2501), ("ease_ials", "evaluated_users", 40.0),
           ("popularity", "ndcg_at_10", 0.1503), ("popularity", "precision_at_10", 0.1204)]
TUNING = [("als_explicit", 0, {"rank": 10, "reg_param": 0.1}, "rmse", 0.9031), ("als_explicit", 0, {"rank": 10, "reg_param": 0.1}, "mae", 0.7),
          ("als_explicit", 1, {"rank": 10, "reg_param": 0.2}, "rmse", 0.8843), ("als_explicit", 1, {"rank": 10, "reg_param": 0.2}, "mae", 0.69),
          ("als_explicit", 2, {"rank": 20, "reg_param": 0.2, "seconds": 6.2}, "rmse", 0.8917), ("als_explicit", 2, {"rank": 20, "reg_param": 0.2}, "mae", 0.69),
          ("ease_ials", 0, {"ease_reg": 100.0, "ials_weight": 0.0}, "ndcg_at_10", 0.2804),
          ("ease_ials", 1, {"ease_reg": 200.0, "ials_weight": 0.0}, "ndcg_at_10", 0.3107),
          ("ease_ials", 1, {"ease_reg": 200.0, "ials_weight": 0.0}, "recall_at_10", 0.2)]
DISTRIBUTION = [(5.0, 600), (1.0, 100), (3.5, 300)]  # unsorted on purpose: the report sorts
YEARS = [(2020, 700, 3.912), (2019, 300, 3.5)]
GENRE_MOVIES = {"Comedy": ["Toy Story (1995)", "Amélie (2001)"], "Drama": ["Heat <1995>"]}
OVERALL = ["Toy Story (1995)", "Amélie (2001)", "Heat <1995>"]
EARLIER_METRICS = {"als_explicit": {"rmse": 0.9123}, "ease_ials": {"ndcg_at_10": 0.2222}}


def write_table(lake: Path, table: str, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = lake / "gold" / table / f"ds={DS}"
    folder.mkdir(parents=True)
    # Two part files, as Spark writes them, plus its marker file: the report reads the whole partition.
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half]), folder / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:]), folder / "part-00001.parquet")
    (folder / "_SUCCESS").write_bytes(b"")


def popular_rows() -> list[dict]:
    rows = []
    movie = {"Toy Story (1995)": (1, 1995, 215), "Amélie (2001)": (2, 2001, 120), "Heat <1995>": (3, None, 110)}
    for ranked_by in ("mean_rating", "bayesian_avg"):
        segments = [("overall", "all", OVERALL)] + [("genre", g, titles) for g, titles in GENRE_MOVIES.items()]
        for scope, segment, titles in segments:
            for rank, title in enumerate(titles if ranked_by == "bayesian_avg" else titles[::-1], start=1):
                movie_id, year, n = movie[title]
                rows.append({"scope": scope, "segment": segment, "ranked_by": ranked_by, "rank": rank, "movieId": movie_id,
                             "title": title, "year": year, "n_ratings": n, "mean_rating": 4.5 - rank / 10,
                             "bayesian_avg": 4.2 - rank / 10})
    return rows


@pytest.fixture
def lake(lake_url) -> Path:
    root = Path(lake_url[len("file://"):])
    write_table(root, "model_metrics", [{"model": m, "metric": k, "value": v} for m, k, v in METRICS])
    write_table(root, "model_tuning", [{"model": m, "trial": t, "params": json.dumps(p, sort_keys=True), "metric": k, "value": v}
                                       for m, t, p, k, v in TUNING])
    write_table(root, "rating_distribution", [{"rating": r, "n_ratings": n, "share": n / 1000} for r, n in DISTRIBUTION])
    write_table(root, "ratings_by_year", [{"year": y, "n_ratings": n, "mean_rating": m} for y, n, m in YEARS])
    write_table(root, "popular_movies", popular_rows())
    return root


def add_run_summary(root: Path, ds: str, metrics: dict) -> None:
    folder = root / layout.REPORTS / f"ds={ds}"
    folder.mkdir(parents=True)
    (folder / layout.RUN_SUMMARY).write_text(json.dumps({"ds": ds, "metrics": metrics}))


class Page(HTMLParser):
    """Tables (rows of cell texts), images and paragraphs of the report, by section (``<h2 id>``)."""

    def __init__(self, html: str):
        super().__init__()
        self.section = None
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.images: dict[str, list[dict]] = {}
        self.text: dict[str, str] = {}
        self.links: list[str] = []
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self.section = attrs.get("id", "other")
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.tables[self.section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.setdefault(self.section, []).append(attrs)
        elif tag in ("link", "script"):
            self.links.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[self.section][-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        self.text[self.section] = self.text.get(self.section, "") + data


def svg_of(image: dict) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert image["src"].startswith(prefix), image["src"][:40]
    return base64.b64decode(image["src"][len(prefix):]).decode("utf-8")


def build(lake: Path) -> tuple[dict, str]:
    from movielens import report

    result = report.build_report(DS)
    assert result["report"] == f"{lake.as_uri()}/reports/ds={DS}/report.html"
    return result, (lake / layout.REPORTS / f"ds={DS}" / layout.RUN_REPORT).read_text(encoding="utf-8")


def test_every_section_shows_the_gold_tables_numbers(lake):
    add_run_summary(lake, EARLIER_DS, EARLIER_METRICS)
    _, html = build(lake)
    page = Page(html)
    assert not page.links, "self-contained: no stylesheets or scripts to fetch"

    # Every plot is an embedded SVG with its title.
    expected_plots = {"metrics": "ranking (higher is better)", "recent": "ndcg_at_10", "tuning": "als_explicit: rmse (lowest is best)",
                      "distribution": "Rating distribution", "years": "Ratings per year", "top-overall": "Top 3 movies overall"}
    for section, title in expected_plots.items():
        [image] = page.images[section]
        assert title in svg_of(image), section

    # Model metrics against the baseline: one column per model, the baseline last; counts are left out.
    [metrics] = page.tables["metrics"]
    assert metrics[0] == ["metric", "als_explicit", "ease_ials", "popularity (baseline)"]
    assert metrics[1:] == [["rmse", "0.8712", "", ""], ["mae", "0.6699", "", ""],
                           ["precision_at_10", "", "0.2501", "0.1204"], ["ndcg_at_10", "0.0421", "0.3012", "0.1503"]]

    # Recent runs: this run, then the earlier summary's numbers.
    assert "2026-11-19" in page.text["recent"] and "No previous run" not in page.text["recent"]
    [recent] = page.tables["recent"]
    assert recent[0] == ["ds", "model", "rmse", "mae", "precision_at_10", "ndcg_at_10"]
    assert recent[1] == [DS, "als_explicit", "0.8712", "0.6699", "", "0.0421"]
    assert [EARLIER_DS, "als_explicit", "0.9123", "", "", ""] in recent and [EARLIER_DS, "ease_ials", "", "", "", "0.2222"] in recent

    # Tuning: every trial of each grid, in order, with its parameters (not its wall time) and the tuned metric.
    als, ease = page.tables["tuning"]
    assert als[1:] == [["0", "rank=10, reg_param=0.1", "0.9031"], ["1", "rank=10, reg_param=0.2", "0.8843"],
                       ["2", "rank=20, reg_param=0.2", "0.8917"]]
    assert ease[1:] == [["0", "ease_reg=100.0, ials_weight=0.0", "0.2804"], ["1", "ease_reg=200.0, ials_weight=0.0", "0.3107"]]
    assert '<tr class="best"><td class="num">1</td><td>rank=10, reg_param=0.2</td>' in html

    [distribution] = page.tables["distribution"]
    assert distribution[1:] == [["1.0", "100", "10.0%"], ["3.5", "300", "30.0%"], ["5.0", "600", "60.0%"], ["all", "1,000", ""]]
    [years] = page.tables["years"]
    assert years[1:] == [["2019", "300", "3.50"], ["2020", "700", "3.91"]]

    # Top movies by Bayesian average (not by mean): overall, then per genre; titles escaped, no year left blank.
    [overall] = page.tables["top-overall"]
    assert [row[1] for row in overall[1:]] == OVERALL
    assert overall[1] == ["1", "Toy Story (1995)", "1995", "215", "4.40", "4.10"]
    assert overall[3][:3] == ["3", "Heat <1995>", ""] and "Heat &lt;1995&gt;" in html
    genre_tables = page.tables["top-genre"]
    assert [[row[1] for row in table[1:]] for table in genre_tables] == list(GENRE_MOVIES.values())
    assert "Comedy" in page.text["top-genre"] and "Drama" in page.text["top-genre"]


def test_same_inputs_same_bytes(lake):
    _, first = build(lake)
    _, second = build(lake)
    assert first == second


def test_first_run_and_no_tuning_say_so(lake):
    import shutil

    shutil.rmtree(lake / "gold" / "model_tuning")
    add_run_summary(lake, "2026-11-21", EARLIER_METRICS)  # later than the run: not an earlier run
    _, html = build(lake)
    page = Page(html)
    assert "No previous run" in page.text["recent"] and "2026-11-21" not in html
    assert "No tuning trials" in page.text["tuning"] and "tuning" not in page.images


def write_tuning_decision(root: Path, ds: str, action: str, source_ds: str | None = None) -> None:
    """``models/ds=D/params.json`` with the spec's tuning decision, as the Spark job records it."""
    folder = root / layout.MODELS / f"ds={ds}"
    folder.mkdir(parents=True, exist_ok=True)
    tuning = {"action": action, "reason": "as the test says", "source_ds": source_ds, "version": None}
    (folder / layout.MODEL_PARAMS).write_text(json.dumps({"spec": {"settings": {}, "tuning": tuning}}))


def empty_tuning_partition(root: Path, ds: str) -> None:
    """gold/model_tuning of a date without trials, as Spark writes it: one part file with the schema, no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "gold" / "model_tuning" / f"ds={ds}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    schema = pa.schema([("model", pa.string()), ("trial", pa.int32()), ("params", pa.string()), ("metric", pa.string()),
                        ("value", pa.float64())])
    pq.write_table(schema.empty_table(), folder / "part-00000.parquet")
    (folder / "_SUCCESS").write_bytes(b"")


def test_a_run_that_reused_parameters_shows_the_trials_that_chose_them(lake):
    import shutil

    shutil.move(lake / "gold" / "model_tuning" / f"ds={DS}", lake / "gold" / "model_tuning" / f"ds={EARLIER_DS}")
    empty_tuning_partition(lake, DS)
    write_tuning_decision(lake, DS, "reuse", EARLIER_DS)
    _, html = build(lake)
    page = Page(html)
    assert f"it reused the parameters chosen by the tuning run of ds={EARLIER_DS}, whose trials follow" in page.text["tuning"]
    assert f"gold/model_tuning/ds={EARLIER_DS}" in page.text["tuning"]
    als, ease = page.tables["tuning"]
    assert [row[1] for row in als[1:]] == ["rank=10, reg_param=0.1", "rank=10, reg_param=0.2", "rank=20, reg_param=0.2"]
    # The tuning run's trials gone from the lake: the report still says where the parameters came from.
    shutil.rmtree(lake / "gold" / "model_tuning" / f"ds={EARLIER_DS}")
    page = Page(build(lake)[1])
    assert f"tuning run of ds={EARLIER_DS}." in page.text["tuning"] and "No tuning trials for this date." in page.text["tuning"]


def test_a_run_with_tuning_off_says_so_over_an_empty_tuning_table(lake):
    empty_tuning_partition(lake, DS)
    write_tuning_decision(lake, DS, "off")
    page = Page(build(lake)[1])
    assert "No tuning trials for this date (tuning off" in page.text["tuning"] and "reused" not in page.text["tuning"]
    assert "tuning" not in page.images


def test_the_run_summary_links_the_report_once_it_exists(lake):
    from movielens import pipeline

    assert pipeline.build_run_summary(DS, "manual__1", "movielens_daily")["outputs"]["report"] is None
    build(lake)
    summary = pipeline.build_run_summary(DS, "manual__1", "movielens_daily")
    assert summary["outputs"]["report"] == f"{lake.as_uri()}/reports/ds={DS}/report.html"
