"""Lineage of the lake: its data products as Airflow Assets, and each task's inputs and outputs as lake URLs.

- **Assets** (the UI's asset graph, asset events per run): the validated and rejected files, announced by the
  routing tasks through the alias :data:`ROUTED_FILES_ALIAS` for the zone each file really went to (a static outlet
  would announce ``validated`` for a rejected file too); the gold recommendations and similar movies,
  announced with the run's date as the event's partition key when the Spark job of the date is done. Their
  URIs are the lake URL (``MOVIELENS_LAKE_URL``) at parse plus the product's folder.
- **OpenLineage**: a task calls :func:`record` with the lake URLs it read and wrote (files and table
  partitions of its date); :class:`movielens.lineage_extractor.LakeLineageExtractor` puts them in the task's
  COMPLETE event as datasets. Nothing reaches the events but plain URLs (``Lake.uri``): never a connection id
  or a secret.

This module is imported by the DAG files: nothing of OpenLineage is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from movielens import config
from spark_jobs.common import layout

#: Product -> its folder in the lake.
PRODUCTS = {
    "validated": layout.VALIDATED,
    "rejected": layout.REJECTED,
    "recommendations": f"{layout.GOLD}/recommendations",
    "similar_movies": f"{layout.GOLD}/similar_movies",
}
ROUTED_FILES_ALIAS = "movielens.routed_files"

#: The OpenLineage settings every deployment of this project needs (the embedded default's environment and
#: docker-compose.yaml): the extractor of the lake URLs, and no hook lineage, whose URLs of Airflow's object
#: storage name the connection (``s3://aws_default@bucket/...``) and would be a task's datasets whenever it
#: recorded none. The transport and namespace are the deployment's own (docs/lineage.md).
AIRFLOW_SETTINGS = {
    "AIRFLOW__OPENLINEAGE__EXTRACTORS": "movielens.lineage_extractor.LakeLineageExtractor",
    "AIRFLOW__OPENLINEAGE__EMISSION_POLICY": '[{"scope": {}, "controls": {"hook_lineage": false}}]',
}


def asset_uri(product: str, lake_url: str | None = None) -> str:
    """The URI of a product of :data:`PRODUCTS` on ``lake_url`` (default: ``MOVIELENS_LAKE_URL``)."""
    return f"{(lake_url or config.lake_url()).rstrip('/')}/{PRODUCTS[product]}"


def asset(product: str):
    """The Asset of a product of :data:`PRODUCTS` on the lake of ``MOVIELENS_LAKE_URL``.

    Its name is the same on every lake. Airflow keeps one active Asset per name: after a change of
    ``MOVIELENS_LAKE_URL`` the new URI of a task's outlet becomes active when the scheduler's orphan check
    (every ``[scheduler] parsing_cleanup_interval``) has retired the old one, and a task run before then fails
    with ``AirflowInactiveAssetInInletOrOutletException``. An Asset an alias announced is never retired, so
    the validated and rejected files' are no task's inlet or outlet: only the alias announces them."""
    from airflow.sdk import Asset

    return Asset(name=f"movielens.{PRODUCTS[product].replace('/', '.')}", uri=asset_uri(product))


def routed_files_alias():
    from airflow.sdk import AssetAlias

    return AssetAlias(ROUTED_FILES_ALIAS)


def announce_routed(outlet_events, record: dict[str, Any]) -> dict[str, Any]:
    """An asset event of the zone (``validated`` or ``rejected``) a routing record's file went to; the record."""
    product = layout.VALIDATED if record["passed"] else layout.REJECTED
    outlet_events[routed_files_alias()].add(
        asset(product), extra={"ds": record["ds"], "file": record["file"], "kind": record.get("kind"),
                               "url": record["destination"]})
    return record


def announce_products(outlet_events, ds: str, products: Iterable[str], **extra: Any) -> None:
    """The date's asset events of ``products``, the date as their partition key."""
    for product in products:
        event = outlet_events[asset(product)]
        event.add_partitions(ds)
        event.extra = {"ds": ds, **extra}


#: Task instance (dag, task, run, map index) -> the lake URLs it read and wrote (:func:`record`), until the
#: OpenLineage extractor takes them. Keyed by task instance: ``airflow dags test`` runs every task in one process,
#: and the provider may emit from a forked child, where clearing would not reach this process.
_recorded: dict[tuple, dict[str, list[str]]] = {}


def task_instance_key(ti) -> tuple:
    return ti.dag_id, ti.task_id, ti.run_id, ti.map_index


def record(*, inputs: Iterable[str] = (), outputs: Iterable[str] = ()) -> None:
    """The running task's inputs and outputs, as lake URLs, for the OpenLineage event of its completion
    (:class:`movielens.lineage_extractor.LakeLineageExtractor`). Outside a task (the CLI) it records nothing."""
    from airflow.sdk import get_current_context

    try:
        key = task_instance_key(get_current_context()["ti"])
    except RuntimeError:  # no task is running
        return
    urls = _recorded.setdefault(key, {"inputs": [], "outputs": []})
    for side, new in (("inputs", inputs), ("outputs", outputs)):
        urls[side].extend(u for u in new if u not in urls[side])


def recorded(ti) -> dict[str, list[str]]:
    """What the task instance ``ti`` recorded, forgotten here (empty when nothing was)."""
    return _recorded.pop(task_instance_key(ti), {"inputs": [], "outputs": []})


#: What the daily Spark job announces when it is done.
SPARK_JOB_PRODUCTS = ("recommendations", "similar_movies")


def written_partitions(lake, ds: str) -> list[str]:
    """URLs of the whole ``ds=D`` partitions of every bronze, silver and gold table, and of ``models/ds=D``."""
    urls = []
    for zone in layout.TABLE_ZONES:
        root = lake.path(zone)
        if not root.exists():
            continue
        for table in sorted(root.iterdir(), key=lambda p: p.name):
            partition = table / layout.partition(ds)
            if (partition / layout.COMPLETE_MARKER).exists():
                urls.append(lake.uri(partition))
    models = lake.zone(layout.MODELS, ds)
    return urls + ([lake.uri(models)] if models.exists() else [])


def spark_job_done(outlet_events, ds: str, backend: str) -> None:
    """The Spark job of ``ds`` finished on ``backend``: its lineage (validated files in, the date's partitions
    out) and the asset events of :data:`SPARK_JOB_PRODUCTS` (``published``: whether the gate served them)."""
    from movielens.lake import Lake

    lake = Lake.from_settings(config.load())
    record(inputs=[lake.uri(lake.path(layout.VALIDATED))], outputs=written_partitions(lake, ds))
    announce_products(outlet_events, ds, SPARK_JOB_PRODUCTS, backend=backend,
                      published=layout.is_published(lake.publication(ds)))
