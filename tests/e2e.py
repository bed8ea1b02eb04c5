"""What the end-to-end runs share: the embedded default's environment for one run in a test's folder."""

from __future__ import annotations

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
