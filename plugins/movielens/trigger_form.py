"""The daily DAG's trigger form: one typed Param per model setting a run may override.

Built from :data:`movielens.config.RUN_SETTINGS` (names, bounds, titles, descriptions), so the form, the
check of a run's values and the README describe the same settings. Every Param's default means
"follow the environment": a number left empty (``None``) or a choice left at ``default``. Scheduled runs
use the defaults, so only a manual run with a value set differs from the environment, and only that run.

How Airflow 3.3's form renders them (read from its UI code): ``type: ["null", "integer"]`` is a number
field whose empty value is ``null``; a ``string`` with ``enum`` is a drop-down; a ``boolean`` would be an
on/off switch, which has no "follow the environment" position, hence ``tune`` is a choice.
"""

from __future__ import annotations

from airflow.sdk import Param

from movielens import config

SECTION = "Model settings for this run (default: the environment's)"


def model_params() -> dict[str, Param]:
    params: dict[str, Param] = {}
    for spec in config.RUN_SETTINGS:
        if spec.choices:
            params[spec.name] = Param(
                config.FOLLOW_ENV,
                type="string",
                enum=[config.FOLLOW_ENV, *spec.choices],
                values_display={config.FOLLOW_ENV: f"default ({spec.env})", **{c: c for c in spec.choices}},
                title=spec.title,
                description=f"{spec.description} '{config.FOLLOW_ENV}' follows {spec.env}.",
                section=SECTION,
            )
        else:
            params[spec.name] = Param(
                None,
                type=["null", spec.type],
                minimum=spec.minimum,
                maximum=spec.maximum,
                title=spec.title,
                description=f"{spec.description} Empty: {spec.env}. From {spec.minimum:,} to {spec.maximum:,}.",
                section=SECTION,
            )
    return params
