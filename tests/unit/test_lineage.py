"""movielens.lineage: the Assets' names and URIs, the OpenLineage naming of lake URLs, what a task records and
the extractor reports, and which partitions a Spark job's lineage names. The DAG run's events: the stack test."""

from __future__ import annotations

import json
import types

import pytest
from movielens import lineage

from spark_jobs.common import layout

DS = "2026-11-20"


def test_the_assets_are_the_products_folders_on_the_lake_of_the_settings(monkeypatch):
    monkeypatch.setenv("MOVIELENS_LAKE_URL", "s3://team-lake/movielens/")
    recs = lineage.asset("recommendations")
    assert (recs.name, recs.uri) == ("movielens.gold.recommendations", "s3://team-lake/movielens/gold/recommendations")
    assert lineage.asset("rejected").uri == "s3://team-lake/movielens/rejected"
    with pytest.raises(KeyError):
        lineage.asset("silver")


@pytest.mark.parametrize("url, namespace, name", [
    ("file:///srv/lake/validated/ds=2026-11-20/ratings.csv", "file", "/srv/lake/validated/ds=2026-11-20/ratings.csv"),
    ("s3://team-lake/movielens/gold/recommendations/ds=2026-11-20", "s3://team-lake",
     "movielens/gold/recommendations/ds=2026-11-20"),
    ("postgres://db.internal:5433/serving/public/recommendations", "postgres://db.internal:5433",
     "serving.public.recommendations"),
])
def test_a_lake_url_is_named_as_openlineage_names_its_storage(url, namespace, name):
    from movielens.lineage_extractor import dataset

    assert (dataset(url).namespace, dataset(url).name) == (namespace, name)


def test_an_azure_url_is_named_by_the_storage_account_of_the_lakes_connection(monkeypatch):
    from movielens.lineage_extractor import dataset

    monkeypatch.setenv("MOVIELENS_LAKE_URL", "abfs://lake/movielens")
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps({"conn_type": "wasb", "login": "teamstore"}))
    found = dataset("abfs://lake/movielens/silver/ratings/ds=2026-11-20")
    assert (found.namespace, found.name) == ("abfss://lake@teamstore.dfs.core.windows.net",
                                             "movielens/silver/ratings/ds=2026-11-20")


def running_task(monkeypatch, task_id: str, map_index: int = -1):
    ti = types.SimpleNamespace(dag_id="movielens_daily", task_id=task_id, run_id="manual__1", map_index=map_index)
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"ti": ti})
    return ti


def test_each_task_instance_reports_only_what_it_recorded_once(monkeypatch):
    from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
    from movielens.lineage_extractor import LakeLineageExtractor

    first = running_task(monkeypatch, "route_other_files", map_index=0)
    lineage.record(inputs=["file:///lake/landing/ds=D/a.csv"], outputs=["file:///lake/validated/ds=D/a.csv"])
    lineage.record(outputs=["file:///lake/validated/ds=D/a.csv", "file:///lake/reports/ds=D/files/a.csv.json"])
    second = running_task(monkeypatch, "route_other_files", map_index=1)
    lineage.record(inputs=["file:///lake/landing/ds=D/b.csv"])

    operator = _PythonDecoratedOperator(task_id="route_other_files", python_callable=lambda: None, op_args=[],
                                        op_kwargs={})
    found = LakeLineageExtractor(operator).extract_on_complete(first)
    assert [d.name for d in found.inputs] == ["/lake/landing/ds=D/a.csv"]
    assert [d.name for d in found.outputs] == ["/lake/validated/ds=D/a.csv", "/lake/reports/ds=D/files/a.csv.json"]
    again = LakeLineageExtractor(operator).extract_on_complete(first)
    assert again.inputs == [] and again.outputs == [], "a task instance's URLs are reported once"
    assert [d.name for d in LakeLineageExtractor(operator).extract_on_complete(second).inputs] == [
        "/lake/landing/ds=D/b.csv"]
    assert "_PythonDecoratedOperator" in LakeLineageExtractor.get_operator_classnames()


def test_outside_a_task_nothing_is_recorded():
    before = json.dumps({str(k): v for k, v in lineage._recorded.items()})
    lineage.record(inputs=["file:///lake/validated"])
    assert json.dumps({str(k): v for k, v in lineage._recorded.items()}) == before, "nothing kept for a later task"


def test_the_spark_jobs_lineage_names_only_whole_partitions_of_the_date(tmp_path, monkeypatch):
    from movielens import config
    from movielens.lake import Lake

    monkeypatch.setenv("MOVIELENS_LAKE_URL", tmp_path.as_uri())
    lake = Lake.from_settings(config.load())
    for table, marker in (("silver/ratings", True), ("gold/recommendations", True), ("gold/similar_movies", False)):
        partition = tmp_path / table / layout.partition(DS)
        partition.mkdir(parents=True)
        (partition / "part-0.parquet").write_bytes(b"x")
        if marker:
            (partition / layout.COMPLETE_MARKER).write_bytes(b"")
    (tmp_path / "silver/ratings" / layout.partition("2026-11-19")).mkdir()
    (tmp_path / layout.MODELS / layout.partition(DS)).mkdir(parents=True)
    root = tmp_path.as_uri()
    assert lineage.written_partitions(lake, DS) == [
        f"{root}/silver/ratings/ds={DS}", f"{root}/gold/recommendations/ds={DS}", f"{root}/models/ds={DS}"]
