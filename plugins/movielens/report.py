"""The run's HTML report, ``reports/ds=D/report.html``: one self-contained file per run.

Sections, all read from the lake for the run's date (Parquet through the lake's ``ObjectStoragePath``,
so ``file://``, ``s3://`` and ``abfs://`` lakes work alike):

- model metrics against the popularity baseline (``gold/model_metrics``);
- metrics over recent runs (the run summaries of earlier dates, then this run's ``gold/model_metrics``);
- the daily loop over recent dates: the next-day backtest of the served lists against popularity (a trend),
  the publish gate's decisions and the drift and volume of what landed (the run summaries of earlier
  dates, then this run's ``spark_job.json`` and ``publication.json``);
- every trial of the tuning grids (``gold/model_tuning``); when the run reused the parameters tuned on an
  earlier date D (the tuning decision in ``models/ds=D/params.json``), the trials of D that chose them;
- the rating distribution and ratings per year (``gold/rating_distribution``, ``gold/ratings_by_year``);
- top movies overall and per genre (``gold/popular_movies``, ranked by Bayesian average).

Plots are drawn with matplotlib (Agg) as SVG and embedded as ``data:`` URIs, so the file opens alone
from a mail link or a downloaded copy. The same inputs give the same bytes (a rerun of a date leaves
the report as it was): rows are sorted before drawing, SVG ids are salted with a constant, the SVG
carries no date, and the page no time of writing.

matplotlib, pandas and pyarrow are imported inside the functions: the DAG file imports nothing heavy.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movielens import config, lineage
from movielens.lake import Lake
from spark_jobs.common import layout

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).parent / "templates" / "report.html"
GOLD_TABLES = ("model_metrics", "model_tuning", "rating_distribution", "ratings_by_year", "popular_movies")
BASELINE = "popularity"  # the baseline model of spark_jobs/train.py
RECENT_RUNS = 20  # earlier run summaries shown beside this run
TOP_OVERALL = 10
TOP_PER_GENRE = 5
ERROR_METRICS = ("rmse", "mae")  # rating errors: lower is better, plotted apart from the ranking metrics
# Quality metrics in the order reports show them; a ranking metric is named <prefix>_<k> (ndcg_at_10).
METRIC_ORDER = ("rmse", "mae", "precision_at", "recall_at", "ndcg_at", "map_at", "hit_rate_at", "catalog_coverage")
# What each grid was tuned for: the first of these metrics a model's trials have (as in spark_jobs/train.py).
TUNING_TARGETS = (("rmse", "lowest"), ("ndcg_at_", "highest"))
SVG_SALT = "movielens-report"
# A tuning trial's wall time differs on every run: left out, so a rerun's report has the same bytes.
VOLATILE_PARAMS = ("seconds",)


def metric_rank(name: str) -> int | None:
    """Position of a quality metric in :data:`METRIC_ORDER`; None for anything else (``evaluated_users``)."""
    for position, prefix in enumerate(METRIC_ORDER):
        if name == prefix or name.startswith(prefix + "_"):
            return position
    return None


def quality_metrics(names) -> list[str]:
    """The quality metrics among ``names``, in report order."""
    return sorted((n for n in set(names) if metric_rank(n) is not None), key=lambda n: (metric_rank(n), n))


def model_order(names) -> list[str]:
    """Models by name, the baseline last."""
    return sorted(set(names), key=lambda n: (n == BASELINE, n))


# --- reading ---------------------------------------------------------------------------------------

@dataclass
class ReportData:
    ds: str
    lake_url: str
    tables: dict[str, "pd.DataFrame | None"]  # gold table -> its ds partition, None when absent
    sources: dict[str, str]  # gold table -> URL of its partition
    earlier_runs: list[dict[str, Any]] = field(default_factory=list)  # run summaries before ds, oldest first
    # Where the models' parameters came from (the action of the job spec's tuning decision): "tune",
    # "reuse", "off", or None when the job recorded none; and D, whose trials the tuning section shows.
    tuning: str | None = None
    reused_from: str | None = None
    # This run's daily-loop checks: {"backtest": ..., "publication": ..., "drift": ...} as the summary has them.
    loop: dict[str, Any] = field(default_factory=dict)


def read_gold(lake: Lake, table: str, ds: str) -> "pd.DataFrame | None":
    if not lake.table(layout.GOLD, table, ds).exists():
        return None
    return lake.read_table(layout.GOLD, table, ds).to_pandas()


def tuning_origin(lake: Lake, ds: str) -> tuple[str | None, str | None]:
    """(the tuning action, the date whose tuning chose the parameters when reused) of the job of ``ds``."""
    path = lake.zone(layout.MODELS, ds) / layout.MODEL_PARAMS
    tuning = (lake.read_json(path).get("spec") or {}).get("tuning") or {} if path.exists() else {}
    return tuning.get("action"), tuning.get("source_ds")


def loop_checks(lake: Lake, ds: str) -> dict[str, Any]:
    """The Spark job's backtest and drift of ``ds`` and the gate's record, under the run summary's keys."""
    path = lake.zone(layout.REPORTS, ds) / layout.SPARK_REPORT
    job = lake.read_json(path) if path.exists() else {}
    return {"backtest": job.get("backtest", {}), "publication": lake.publication(ds) or {}, "drift": job.get("drift", {})}


def load(lake: Lake, ds: str) -> ReportData:
    tuning, reused_from = tuning_origin(lake, ds)
    # A run that reused parameters has no trials of its own: show those of the run whose tuning chose them.
    date_of = {table: reused_from if table == "model_tuning" and reused_from else ds for table in GOLD_TABLES}
    return ReportData(
        ds=ds,
        lake_url=lake.url,
        tables={table: read_gold(lake, table, date_of[table]) for table in GOLD_TABLES},
        sources={table: lake.uri(lake.table(layout.GOLD, table, date_of[table])) for table in GOLD_TABLES},
        earlier_runs=lake.run_summaries_before(ds, RECENT_RUNS),
        tuning=tuning,
        reused_from=reused_from,
        loop=loop_checks(lake, ds),
    )


# --- plots -----------------------------------------------------------------------------------------

def _svg(fig) -> str:
    """The figure as a ``data:image/svg+xml`` URI, the same bytes for the same figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 8.0, height: float = 3.6, ncols: int = 1):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def _legend_right(fig, axes) -> None:
    """One legend for every panel (a model missing from the first panel still gets its entry)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def plot_rating_distribution(frame: "pd.DataFrame") -> str:
    fig, [ax] = _figure()
    ax.bar(frame["rating"].astype(float), frame["n_ratings"], width=0.4, color="#4C72B0")
    ax.set(title="Rating distribution", xlabel="rating", ylabel="ratings")
    ax.set_xticks(frame["rating"].astype(float))
    return _svg(fig)


def plot_ratings_by_year(frame: "pd.DataFrame") -> str:
    from matplotlib.ticker import MaxNLocator

    fig, [ax] = _figure()
    ax.bar(frame["year"], frame["n_ratings"], color="#4C72B0", label="ratings")
    ax.set(title="Ratings per year", xlabel="year", ylabel="ratings")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    mean = ax.twinx()
    mean.plot(frame["year"], frame["mean_rating"], color="#C44E52", marker="o", label="mean rating")
    mean.set_ylabel("mean rating")
    mean.set_ylim(0, 5.25)
    _legend_right(fig, [ax, mean])
    return _svg(fig)


def plot_top_movies(frame: "pd.DataFrame") -> str:
    fig, [ax] = _figure(height=0.35 * len(frame) + 1.2)
    labels = [f"{rank}. {title}" for rank, title in zip(frame["rank"], frame["title"])]
    ax.barh(labels[::-1], frame["bayesian_avg"][::-1], color="#55A868")
    ax.set(title=f"Top {len(frame)} movies overall (Bayesian average)", xlabel="Bayesian average rating")
    ax.set_xlim(0, 5)
    return _svg(fig)


def plot_model_metrics(metrics: dict[str, dict[str, float]], names: list[str]) -> str:
    """Grouped bars, one bar per model (the baseline hatched): rating errors and ranking metrics side by side."""
    import numpy as np

    models = model_order(metrics)
    panels = [(title, group) for title, group in (
        ("rating error (lower is better)", [n for n in names if n in ERROR_METRICS]),
        ("ranking (higher is better)", [n for n in names if n not in ERROR_METRICS]),
    ) if group]
    fig, axes = _figure(width=10.0, ncols=len(panels))
    width = 0.8 / max(len(models), 1)
    for ax, (title, group) in zip(axes, panels):
        x = np.arange(len(group))
        for i, model in enumerate(models):
            values = [metrics[model].get(name, np.nan) for name in group]
            label = f"{model} (baseline)" if model == BASELINE else model
            ax.bar(x + (i - (len(models) - 1) / 2) * width, values, width, label=label, color=f"C{i}",
                   hatch="//" if model == BASELINE else None, edgecolor="white")
        ax.set_xticks(x, group, rotation=20, ha="right")
        ax.set_title(title)
    _legend_right(fig, axes)
    return _svg(fig)


def plot_tuning(trials: "pd.DataFrame", targets: dict[str, tuple[str, str]]) -> str:
    """Per model, the tuned metric of every trial in the order tried; the chosen trial marked."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(width=4.5 * len(targets), ncols=len(targets))
    for ax, (model, (metric, better)) in zip(axes, targets.items()):
        rows = trials[(trials["model"] == model) & (trials["metric"] == metric)].sort_values("trial")
        ax.plot(rows["trial"], rows["value"], marker="o", color="#4C72B0")
        best = rows.loc[rows["value"].idxmin() if better == "lowest" else rows["value"].idxmax()]
        ax.plot([best["trial"]], [best["value"]], marker="*", markersize=16, color="#C44E52", linestyle="none",
                label=f"best: trial {int(best['trial'])}")
        ax.set(title=f"{model}: {metric} ({better} is best)", xlabel="trial", ylabel=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False)
    return _svg(fig)


def plot_recent_runs(history: list[tuple[str, dict[str, dict[str, float]]]], names: list[str]) -> str:
    """Small multiples: one panel per metric, one line per model, over the runs' dates."""
    import math

    import matplotlib.pyplot as plt

    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    dates = [ds for ds, _ in history]
    models = model_order(m for _, metrics in history for m in metrics)
    for ax, name in zip(axes.flat, names):
        for i, model in enumerate(models):
            values = [metrics.get(model, {}).get(name, math.nan) for _, metrics in history]
            if not all(math.isnan(v) for v in values):
                ax.plot(range(len(dates)), values, marker="o", label=model, color=f"C{i}")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(dates)), dates, rotation=45, ha="right", fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    _legend_right(fig, axes.flat)
    return _svg(fig)


def plot_backtest(rows: list[dict[str, Any]], k: int) -> str:
    """The next-day backtest over dates: NDCG@k and precision@k of the served lists and of popularity."""
    fig, axes = _figure(width=9.0, ncols=2)
    x = range(len(rows))
    for ax, metric in zip(axes, (f"ndcg_at_{k}", f"precision_at_{k}")):
        for i, name in enumerate(("served", "popularity")):
            ax.plot(x, [r[name][metric] for r in rows], marker="o", color=f"C{i}", label=name,
                    linestyle="--" if name == "popularity" else "-")
        ax.set_title(f"backtest {metric}")
        ax.set_xticks(list(x), [r["ds"] for r in rows], rotation=45, ha="right", fontsize=7)
    _legend_right(fig, axes)
    return _svg(fig)


# --- the page --------------------------------------------------------------------------------------

def _count(value) -> str:
    return f"{int(value):,}"


def _number(value, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}"


def _params(raw: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in json.loads(raw).items() if k not in VOLATILE_PARAMS)


def metrics_by_model(frame: "pd.DataFrame | None") -> dict[str, dict[str, float]]:
    """``gold/model_metrics`` rows (model, metric, value) as {model: {metric: value}}."""
    if frame is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for row in frame.sort_values(["model", "metric"]).itertuples(index=False):
        out.setdefault(row.model, {})[row.metric] = float(row.value)
    return out


def tuning_targets(trials: "pd.DataFrame") -> dict[str, tuple[str, str]]:
    """{model: (metric it was tuned for, "lowest" | "highest")} from the metrics its trials carry."""
    targets = {}
    for model in model_order(trials["model"]):
        measured = set(trials.loc[trials["model"] == model, "metric"])
        for prefix, better in TUNING_TARGETS:
            metric = next((m for m in sorted(measured) if m == prefix or (prefix.endswith("_") and m.startswith(prefix))), None)
            if metric:
                targets[model] = (metric, better)
                break
    return targets


def _year(value) -> str:
    return "" if value is None or value != value else str(int(value))  # NaN != NaN: a movie with no year


def _movie_rows(frame: "pd.DataFrame") -> list[tuple]:
    return [(int(r.rank), r.title, _year(r.year), _count(r.n_ratings), _number(r.mean_rating, 2), _number(r.bayesian_avg, 2))
            for r in frame.itertuples(index=False)]


def metrics_section(metrics: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    if not metrics:
        return None
    names = quality_metrics(n for m in metrics.values() for n in m)
    models = model_order(metrics)
    return {
        "figure": plot_model_metrics(metrics, names),
        "models": [(m, m == BASELINE) for m in models],
        "rows": [(n, [_number(metrics[m][n]) if n in metrics[m] else "" for m in models]) for n in names],
    }


def recent_section(data: ReportData, metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    history = [(s["ds"], s.get("metrics", {})) for s in data.earlier_runs]
    if metrics:
        history.append((data.ds, metrics))
    names = quality_metrics(n for _, ms in history for m in ms.values() for n in m)
    return {
        "earlier": [s["ds"] for s in data.earlier_runs],
        "figure": plot_recent_runs(history, names) if names else None,
        "names": names,
        "rows": [(ds, model, [_number(ms[model][n]) if n in ms[model] else "" for n in names])
                 for ds, ms in reversed(history) for model in model_order(ms)],
    }


def loop_section(data: ReportData) -> dict[str, Any] | None:
    """One row per date (earlier run summaries, then this run): backtest, gate decision, what landed."""
    history = [(s["ds"], s) for s in data.earlier_runs] + [(data.ds, data.loop)]
    rows, scored = [], []
    for ds, checks in history:
        backtest, publication, drift = (checks.get(key) or {} for key in ("backtest", "publication", "drift"))
        if not (backtest or publication or drift):
            continue
        k = backtest.get("k")
        lists = backtest.get("lists") or {}
        if backtest.get("status") == "scored":
            scored.append({"ds": ds, **lists})

        def value(name: str, metric: str) -> str:
            return _number(lists[name][f"{metric}_at_{k}"]) if name in lists else ""

        m = drift.get("metrics", {})
        rows.append({
            "ds": ds, "served_ds": backtest.get("served_ds") or "",
            "backtest": [value("served", "ndcg"), value("popularity", "ndcg"), value("served", "precision"),
                         value("popularity", "precision")],
            "users": _count(lists["served"]["users_with_new_ratings"]) if "served" in lists else "",
            "status": "" if backtest.get("status") == "scored" else backtest.get("status", ""),
            "gate": ("published" if publication.get("published") else "held back") if publication else "",
            "forced": publication.get("forced", False),
            "reasons": "; ".join(publication.get("reasons", [])),
            "landed": _count(m["ratings_landed"]) if "ratings_landed" in m else "",
            "new_users": _count(m.get("new_users", 0)), "new_movies": _count(m.get("new_movies", 0)),
            "psi": _number(m["rating_psi"], 3) if m.get("rating_psi") is not None else "",
            "alerts": "; ".join(drift.get("alerts", [])),
        })
    if not rows:
        return None
    k = next((c["backtest"]["k"] for _, c in reversed(history) if (c.get("backtest") or {}).get("k")), 10)
    return {"k": k, "rows": list(reversed(rows)), "figure": plot_backtest(scored, k) if scored else None}


def tuning_section(trials: "pd.DataFrame | None") -> dict[str, Any] | None:
    if trials is None or not len(trials):
        return None
    targets = tuning_targets(trials)
    tables = []
    for model, (metric, better) in targets.items():
        rows = trials[(trials["model"] == model) & (trials["metric"] == metric)].sort_values("trial")
        best = rows["value"].min() if better == "lowest" else rows["value"].max()
        tables.append({"model": model, "metric": metric, "better": better, "rows": [
            (int(r.trial), _params(r.params), _number(r.value), r.value == best) for r in rows.itertuples(index=False)]})
    return {"figure": plot_tuning(trials, targets) if targets else None, "tables": tables}


def distribution_section(dist: "pd.DataFrame | None") -> dict[str, Any] | None:
    if dist is None or not len(dist):
        return None
    dist = dist.sort_values("rating")
    return {
        "figure": plot_rating_distribution(dist),
        "total": _count(dist["n_ratings"].sum()),
        "rows": [(_number(r.rating, 1), _count(r.n_ratings), f"{r.share:.1%}") for r in dist.itertuples(index=False)],
    }


def years_section(years: "pd.DataFrame | None") -> dict[str, Any] | None:
    if years is None or not len(years):
        return None
    years = years.sort_values("year")
    return {
        "figure": plot_ratings_by_year(years),
        "rows": [(int(r.year), _count(r.n_ratings), _number(r.mean_rating, 2)) for r in years.itertuples(index=False)],
    }


def popular_section(popular: "pd.DataFrame | None") -> dict[str, Any] | None:
    if popular is None or not len(popular):
        return None
    ranked = popular[popular["ranked_by"] == "bayesian_avg"].sort_values(["scope", "segment", "rank"])
    overall = ranked[(ranked["scope"] == "overall") & (ranked["rank"] <= TOP_OVERALL)]
    genres = ranked[(ranked["scope"] == "genre") & (ranked["rank"] <= TOP_PER_GENRE)]
    return {
        "figure": plot_top_movies(overall) if len(overall) else None,
        "overall": _movie_rows(overall),
        "genres": [(genre, _movie_rows(rows)) for genre, rows in genres.groupby("segment", sort=True)],
    }


def sections(data: ReportData) -> dict[str, Any]:
    """Everything the template shows, numbers already formatted; a section is None when its table is absent."""
    t = data.tables
    metrics = metrics_by_model(t["model_metrics"])
    return {
        "metrics": metrics_section(metrics),
        "recent": recent_section(data, metrics),
        "loop": loop_section(data),
        "tuning": tuning_section(t["model_tuning"]),
        "distribution": distribution_section(t["rating_distribution"]),
        "years": years_section(t["ratings_by_year"]),
        "popular": popular_section(t["popular_movies"]),
    }


def render(data: ReportData) -> str:
    """The report page for ``data``: the same HTML for the same data."""
    import jinja2
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; chosen before pyplot is imported
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(TEMPLATE.read_text())
    # Constant SVG ids and text kept as text (smaller, searchable): the same figure, the same bytes.
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none", "font.size": 9}):
        content = sections(data)
    return template.render(ds=data.ds, lake=data.lake_url, sources=data.sources, top_overall=TOP_OVERALL,
                           tuning_status=data.tuning, reused_from=data.reused_from,
                           top_per_genre=TOP_PER_GENRE, **content)


def build_report(ds: str) -> dict[str, Any]:
    """Write ``reports/ds=D/report.html`` from the lake and return its URL."""
    lake = Lake.from_settings(config.load())
    data = load(lake, ds)
    html = render(data)
    target = lake.zone(layout.REPORTS, ds) / layout.RUN_REPORT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(html.encode("utf-8"))
    lineage.record(inputs=[data.sources[t] for t, frame in data.tables.items() if frame is not None],
                   outputs=[lake.uri(target)])
    log.info("report for ds=%s: %s (%d bytes)", ds, lake.uri(target), len(html))
    return {"report": lake.uri(target)}
