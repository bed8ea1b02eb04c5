"""The OpenLineage extractor of the ``@task`` tasks, registered with ``[openlineage] extractors``
(docs/lineage.md): each task's COMPLETE event names the lake URLs it :func:`movielens.lineage.record`-ed as
OpenLineage datasets."""

from __future__ import annotations

from airflow.providers.openlineage.extractors.python import PythonExtractor

from movielens import config
from movielens.lineage import recorded


def dataset(url: str):
    """An OpenLineage dataset of a lake URL, after OpenLineage's naming: ``file`` + the path, ``s3://bucket`` +
    the key, ``abfss://container@account.dfs.core.windows.net`` + the path (``abfs://container`` when the
    account is not known), ``postgres://host:port`` + ``database.schema.table``."""
    from urllib.parse import urlsplit

    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Dataset(namespace="file", name=parts.path)
    if scheme in ("postgres", "postgresql"):
        return Dataset(namespace=f"postgres://{parts.netloc}", name=".".join(parts.path.strip("/").split("/")))
    if scheme in ("abfs", "abfss"):
        from movielens.lake import storage_account

        account = storage_account(config.load().lake_conn_id)
        namespace = f"abfss://{parts.netloc}@{account}.dfs.core.windows.net" if account else f"abfs://{parts.netloc}"
        return Dataset(namespace=namespace, name=parts.path.lstrip("/"))
    return Dataset(namespace=f"{scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


class LakeLineageExtractor(PythonExtractor):
    """OpenLineage extractor of the ``@task`` tasks: their source code (as the provider's ``PythonExtractor``) and
    the lake URLs they :func:`movielens.lineage.record`. Registered with ``[openlineage] extractors`` (docs/lineage.md); with
    ``hook_lineage`` off in ``[openlineage] emission_policy``, so that the URLs Airflow's object storage
    collects by itself (``s3://<conn_id>@bucket/...``) never reach an event."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def extract_on_complete(self, task_instance):
        lineage = super().extract()
        urls = recorded(task_instance)
        lineage.inputs = [dataset(u) for u in urls["inputs"]]
        lineage.outputs = [dataset(u) for u in urls["outputs"]]
        return lineage
