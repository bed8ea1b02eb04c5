"""The daily DAG's trigger form: one typed Param per run setting of the run spec that has a title.

Names, bounds, titles and help come from ``spark_jobs.common.spec``. Every Param's default means "follow
the environment": a number left empty (``None``) or a choice left at ``default``, so only a manual run
with a value set differs from the environment, and only that run.

How Airflow 3.3's form renders them (read from its UI code): ``type: ["null", "integer"]`` is a number
field whose empty value is ``null``; a ``string`` with ``enum`` is a drop-down; a ``boolean`` would be an
on/off switch, which has no "follow the environment" position, hence yes/no settings are choices.
"""

from __future__ import annotations

from airflow.sdk import Param

from movielens import config
from spark_jobs.common import spec

SECTION = "Model settings for this run (default: the environment's)"
JSON_TYPES = {int: "integer", float: "number"}


def source_params() -> dict[str, Param]:
    """Where this run's data comes from (``ingest``) and where its Spark job runs (``compute``)."""
    return {
        "ingest": Param(
            "none",
            type="string",
            enum=list(config.INGEST_MODES),
            title="Land data first",
            description="Copy MovieLens files into landing before validating: 'none' (files arrive on their "
            "own), 'folder' (MOVIELENS_DIR), 'download' (GroupLens), 'synthetic', 'auto', or 'replay' (this "
            "date's drop of the release replayed as a daily feed: MOVIELENS_REPLAY_START, MOVIELENS_REPLAY_DAYS).",
        ),
        "compute": Param(
            "default",
            type="string",
            enum=["default", *config.COMPUTE_BACKENDS],
            title="Where Spark runs",
            description="'default' follows MOVIELENS_COMPUTE; or this run only on 'local' Spark, 'databricks', "
            "'emr' (EMR on EC2) or 'emr-serverless'.",
        ),
    }


def model_params(settings: config.Settings | None = None) -> dict[str, Param]:
    """The form's model settings; each field's help says the value in effect (the environment's, as the DAG
    was parsed: ``settings`` or :func:`config.load`), which an empty field or ``default`` follows."""
    in_effect = (settings or config.load()).spec
    params: dict[str, Param] = {}
    for setting in spec.form_settings():
        choices = spec.form_choices(setting)
        now = _shown(in_effect.get(setting.name))
        if choices:
            params[setting.name] = Param(
                spec.FOLLOW_ENV,
                type="string",
                enum=[spec.FOLLOW_ENV, *choices],
                values_display={spec.FOLLOW_ENV: f"default ({setting.env}: {now})", **{c: c for c in choices}},
                title=setting.title,
                description=f"{setting.help} '{spec.FOLLOW_ENV}' follows {setting.env}.",
                section=SECTION,
            )
        else:
            params[setting.name] = Param(
                None,
                type=["null", JSON_TYPES[setting.type]],
                minimum=setting.minimum,
                maximum=setting.maximum,
                title=setting.title,
                description=f"{setting.help} Empty: {setting.env}, now {now}. From {setting.minimum:,} to "
                            f"{setting.maximum:,}.",
                section=SECTION,
            )
    return params


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
