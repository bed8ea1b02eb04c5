"""Tune on one date, reuse on the next: the Airflow side's job spec (``movielens.compute.job_spec``: the
settings and the tuning decision over the lake) turned into the job's arguments, parsed and run by
``train.run`` on a tiny file:// lake, as every backend does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_jobs import bronze, item_knn, silver, train
from spark_jobs.common import layout
from spark_jobs.common import spec

pytestmark = pytest.mark.spark

D1, D2 = "2026-01-01", "2026-01-02"
# Per-run values beside the chosen parameters of a tuning run.
TUNING_RECORD = ("tuning_s", "tuning_user_fraction")


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.fixture
def lake_root(tmp_path, monkeypatch, spark):
    """Two dates of validated files, through bronze and silver; the environment a scheduled run has."""
    root = tmp_path / "lake"
    genres = ["Comedy", "Drama", "Action"]
    _write(root / "validated" / f"ds={D1}", "movies.csv",
           "movieId,title,genres\n" + "".join(f"{m},Movie {m} ({1990 + m}),{genres[m % 3]}\n" for m in range(1, 31)))
    ratings = [(u, m, 0.5 + ((u * m + u // 3) % 10) / 2) for u in range(1, 31) for m in range(1, 31) if (u + 2 * m) % 3]
    rows = [f"{u},{m},{r},{900000000 + u}\n" for u, m, r in ratings]
    _write(root / "validated" / f"ds={D1}", "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(rows[:400]))
    _write(root / "validated" / f"ds={D2}", "ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(rows[400:]))
    lake = root.as_uri()
    for ds in (D1, D2):
        bronze.run(spark, lake, ds)
        silver.run(spark, lake, ds, 4.0)
    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS", "MOVIELENS_SEED", "MOVIELENS_TUNE_MAX_USERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOVIELENS_LAKE_URL", lake)
    monkeypatch.setenv("MOVIELENS_ALS_MAX_ITER", "5")
    monkeypatch.setenv("MOVIELENS_TOP_K", "5")
    return lake


def run_as_scheduled(spark, lake: str, ds: str, run_params: dict | None = None) -> tuple[dict, dict]:
    """What a backend does for the run of ``ds``: decide, build the arguments, and the job parses and runs them."""
    from movielens.compute import job_arguments, job_spec

    arguments = job_arguments(lake, ds, job_spec(run_params, ds))
    params = spec.job_parser("test").parse_args(arguments).spec
    result = train.run(spark, lake, ds, params)
    written = Path(layout.join(layout.zone_dir(lake, layout.MODELS, ds), layout.MODEL_PARAMS).removeprefix("file://"))
    return result, json.loads(written.read_text())


def test_the_next_date_reuses_the_tuned_parameters_and_skips_tuning(spark, lake_root):
    from movielens.lake import Lake

    first, tuned = run_as_scheduled(spark, lake_root, D1)
    assert tuned["spec"]["tuning"]["action"] == "tune" and tuned["spec"]["tuning"]["version"] == spec.TUNING_VERSION
    assert {"rating_tune", "top_n_tune"} <= set(first["train_timings_s"])
    assert first["counts"]["model_tuning"] > 0

    second, reused = run_as_scheduled(spark, lake_root, D2)
    assert reused["spec"]["tuning"]["action"] == "reuse" and reused["spec"]["tuning"]["source_ds"] == D1
    assert f"tuned on ds={D1}" in reused["spec"]["tuning"]["reason"]
    assert reused["protocol"]["tuning_split"] is None and reused["spec"]["settings"]["tune"] is True
    assert not {"rating_tune", "top_n_tune"} & set(second["train_timings_s"]), "no tuning step ran"
    # Both models are fitted with exactly the parameters the tuning run chose.
    for model in (train.RATING_MODEL, train.TOP_N_MODEL):
        chosen = {k: v for k, v in tuned["models"][model]["params"].items() if k not in TUNING_RECORD}
        assert reused["models"][model]["params"] == chosen, model
    # Every model is still evaluated on D2's test split, and every table is written; no trials for D2.
    assert set(reused["models"]) == {train.RATING_MODEL, train.TOP_N_MODEL, item_knn.MODEL, train.BASELINE}
    assert {"rmse", "ndcg_at_5"} <= set(reused["models"][train.RATING_MODEL]["metrics"])
    assert reused["models"][train.TOP_N_MODEL]["metrics"]["ndcg_at_5"] >= 0
    assert reused["protocol"]["train_rows"] > tuned["protocol"]["train_rows"], "D2 trains on its own, larger history"
    assert second["counts"]["model_tuning"] == 0 and second["counts"]["recommendations"] > 0
    assert second["counts"]["model_metrics"] == first["counts"]["model_metrics"]
    tuning_table = Lake(lake_root).read_table(layout.GOLD, "model_tuning", D2)
    assert tuning_table.num_rows == 0 and "params" in tuning_table.schema.names, "an empty table with its columns"

    # Reusing is fitting with those values: the same numbers as a run given them explicitly with tuning off.
    rating, top_n = reused["models"][train.RATING_MODEL]["params"], reused["models"][train.TOP_N_MODEL]["params"]
    explicit = spec.JobSpec.build({
        "tune": False, "als_max_iter": 5, "top_k": 5, "als_rank": rating["rank"], "als_reg_param": rating["reg_param"],
        "bias_reg_user": rating["reg_user"], "bias_reg_item": rating["reg_item"], "ease_reg": top_n["ease_reg"],
        "ials_weight": top_n["ials_weight"]})
    given = train.run(spark, lake_root, D2, explicit)
    assert given["models"][train.RATING_MODEL]["metrics"] == reused["models"][train.RATING_MODEL]["metrics"]
    assert given["models"][train.TOP_N_MODEL]["metrics"] == reused["models"][train.TOP_N_MODEL]["metrics"]
