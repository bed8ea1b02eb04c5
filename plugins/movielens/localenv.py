"""The embedded default: Airflow on SQLite in ``var/airflow``, local Spark, the ``file://`` lake, a local
SMTP server writing ``.eml`` files to ``var/mail``. One definition used by ``make demo``, ``make ui``
and the end-to-end tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from movielens.config import PROJECT_ROOT, VAR_DIR

VENV_BIN = Path(sys.executable).parent


def airflow_env(
    *,
    home: Path | None = None,
    smtp_conn: str | None = None,
    lake_url: str | None = None,
    api_port: int = 8080,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the ``airflow`` command with this project's DAGs, plugins and connections.

    Values already set in the caller's environment win (so a user's ``MOVIELENS_*`` or
    ``AIRFLOW_CONN_*`` is respected), except the Airflow paths that define the embedded default.
    """
    home = Path(home or VAR_DIR / "airflow")
    env = dict(os.environ)
    defaults = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "utc",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[*]"}),
        # Masked in logs besides Airflow's own sensitive names: an Azure connection's account key.
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "account_key",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "MOVIELENS_AIRFLOW_BASE_URL": f"http://localhost:{api_port}",
        "NO_PROXY": "*",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            # spark-submit and airflow come from this environment's bin/.
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
            ),
        }
    )
    if smtp_conn:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = smtp_conn
    if lake_url:
        env["MOVIELENS_LAKE_URL"] = lake_url
    env.update(extra or {})
    return env


def airflow(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``airflow <args>`` from this environment."""
    return subprocess.run([str(VENV_BIN / "airflow"), *args], env=env, **kwargs)


def migrate(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    done = airflow(["db", "migrate"], env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def dags_test(dag_id: str, ds: str, env: dict[str, str], conf: dict | None = None, log_file: Path | None = None) -> str:
    """``airflow dags test``; returns the run's final state (``success`` or ``failed``)."""
    args = ["dags", "test", dag_id, ds]
    if conf:
        args += ["--conf", json.dumps(conf)]
    done = airflow(args, env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(output)
    match = re.search(r"DagRun Finished: .*?state=(\w+)", output)
    if match:
        return match.group(1)
    return f"unknown (exit {done.returncode}; no 'DagRun Finished' line)"
