"""Compute backends: each module builds the operator that runs a ``spark_jobs`` entry point.

``local`` (the default) runs ``spark-submit`` on this machine; ``databricks``, ``emr`` and
``emr-serverless`` run it on a cluster. The choice is ``MOVIELENS_COMPUTE`` or the run's ``compute``
param. Every backend passes the job :func:`job_arguments` of ``config.load(<the run's params>)``, for a
job that trains through ``movielens.tuning.settings_for_run`` (which adds the tuned parameters to reuse).
"""

from __future__ import annotations

import json

from spark_jobs.common import layout


def job_arguments(settings, lake_root: str, ds: str) -> list[str]:
    """The command-line arguments of a Spark job, the same whatever runs it.

    ``settings``: ``config.load(run_params)``, so a run's trigger-form overrides are in them, and for the
    daily job ``movielens.tuning.settings_for_run``, which adds the tuned parameters to reuse. Never a
    secret here: the arguments show in ``ps``, in task logs and on a cluster's run page. The lake root is
    a URL without credentials; a cluster reaches the lake with its own identity (instance profile,
    Databricks secret scope), local Spark through staging on this machine.
    """
    layout.check_ds(ds)
    return [
        "--lake-root", lake_root,
        "--ds", ds,
        "--rank", str(settings.als_rank),
        "--reg-param", str(settings.als_reg_param),
        "--max-iter", str(settings.als_max_iter),
        "--liked-threshold", str(settings.liked_threshold),
        "--test-fraction", str(settings.test_fraction),
        "--seed", str(settings.seed),
        "--top-k", str(settings.top_k),
        "--tune" if settings.tune else "--no-tune",
        "--tune-max-users", str(settings.tune_max_users),
        "--ease-reg", str(settings.ease_reg),
        "--ials-weight", str(settings.ials_weight),
        "--max-items", str(settings.top_n_max_items),
        "--refit", settings.refit,
        # Compact JSON: one argument, no spaces, whatever passes it on (spark-submit, an EMR step, Databricks).
        *(["--reuse-params", json.dumps(settings.reuse_params, sort_keys=True, separators=(",", ":"))]
          if settings.reuse_params else []),
    ]
