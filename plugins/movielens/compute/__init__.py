"""Compute backends: where a ``spark_jobs`` entry point runs, and what it is given.

``local`` (the default) runs ``spark-submit`` on this machine; ``databricks``, ``emr`` and
``emr-serverless`` run it on a cluster (the run's ``compute`` param, else ``MOVIELENS_COMPUTE``). Every
backend gives the job the same arguments (:func:`job_arguments`): the lake root as Spark sees it, the
date, and the job spec of :func:`job_spec` (the run's settings and tuning decision, made once for every
backend). :mod:`movielens.compute.tasks` wires the backend of a run into a DAG.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from spark_jobs.common import layout
from spark_jobs.common.spec import JobSpec

log = logging.getLogger(__name__)

#: The Spark entry points that train (and so tune) the models: only they get a tuning decision.
TRAINING_JOBS = ("daily.py", "train.py")


def backend_of(run_params: Mapping[str, Any] | None) -> str:
    """The backend of a run: its ``compute`` param, or ``MOVIELENS_COMPUTE`` when that is ``default``."""
    from movielens import config

    backend = (run_params or {}).get("compute") or "default"
    if backend == "default":
        backend = config.load().compute
    if backend not in config.COMPUTE_BACKENDS:
        raise ValueError(f"compute must be one of {config.COMPUTE_BACKENDS}, got {backend!r}")
    return backend


def job_spec(run_params: Mapping[str, Any] | None, ds: str, job: str = "daily.py") -> JobSpec:
    """The spec of ``job`` for the run of ``ds``: the environment's settings with the run's form values over
    them, and, for a job that trains, the tuning decision over the lake (``movielens.tuning``)."""
    from movielens import config, tuning
    from movielens.lake import Lake

    settings = config.load(run_params)
    if job not in TRAINING_JOBS:
        return JobSpec.build(settings.spec)
    decision = tuning.decide(Lake.from_settings(settings), settings.spec, ds)
    log.info("tuning for ds=%s: %s: %s", ds, decision.action, decision.reason)
    return JobSpec.build(settings.spec, decision)


def job_arguments(lake_root: str, ds: str, spec: JobSpec | Mapping[str, Any]) -> list[str]:
    """The command-line arguments of a Spark job, the same whatever runs it.

    Never a secret here: the arguments show in ``ps``, in task logs and on a cluster's run page. The lake
    root is a URL without credentials; a cluster reaches the lake with its own identity (instance profile,
    Databricks secret scope), local Spark through staging on this machine.
    """
    if not isinstance(spec, JobSpec):
        spec = JobSpec.build(spec.get("settings"), spec.get("tuning"))
    return ["--lake-root", lake_root, "--ds", layout.check_ds(ds), "--spec", spec.to_json()]
