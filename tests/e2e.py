"""What the end-to-end runs share: the embedded default's environment for one run in a test's folder, and
its metadata DB."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from devenv import local_airflow


def airflow_env_for(tmp_path: Path, mailbox, source: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``airflow`` environment with its own home, ``file://`` lake and cache under ``tmp_path``, the test's
    SMTP server (``mailbox``) and MovieLens files to land from ``source``; ``extra`` adds or overrides."""
    return local_airflow.airflow_env(
        home=tmp_path / "airflow",
        smtp_conn=mailbox.connection_uri_json(),
        lake_url=(tmp_path / "lake").as_uri(),
        extra={
            "MOVIELENS_DIR": str(source),
            "MOVIELENS_EMAIL_TO": "team@example.test",
            "MOVIELENS_CACHE_DIR": str(tmp_path / "cache"),
            **(extra or {}),
        },
    )


@functools.cache
def migrated_db() -> Path:
    """A SQLite metadata DB that ``airflow db migrate`` made, once per test session."""
    home = Path(tempfile.mkdtemp(prefix="airflow-db-"))
    atexit.register(shutil.rmtree, home, True)
    local_airflow.migrate(local_airflow.airflow_env(home=home))
    return home / "airflow.db"


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` for ``env``'s home: a copy of the session's migrated SQLite DB (~8 s each saved)."""
    home = Path(env["AIRFLOW_HOME"])
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env or (home / "airflow.db").exists():
        local_airflow.migrate(env)
        return
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_db(), home / "airflow.db")
