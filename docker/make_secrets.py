"""Write the secrets of docker-compose.yaml into ./secrets/ (git ignores it): random passwords and keys, and
the Airflow connections that use them. A file that exists is kept (rerunning changes nothing); the
connections file is written again from the others.

    python3 docker/make_secrets.py [--dir secrets]

Compose mounts each file at /run/secrets/<name> only in the services that list it (docker-compose.yaml):
PostgreSQL and Airflow get the database password, the Airflow services the JWT secret and the connections,
airflow-init the UI passwords, MinIO its root password. Only Python's standard library: runs before any
install.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

#: The secret files docker-compose.yaml names (one home for the list: the compose test reads it too).
PASSWORDS = ("postgres_password", "airflow_jwt_secret", "airflow_admin_password", "airflow_reader_password",
             "minio_root_password")
CONNECTIONS = "airflow_connections"
# Not secrets (the compose file and .env.example say them too); the connections need them.
POSTGRES_USER = "airflow"
SERVING_DATABASE = "movielens"
MINIO_ROOT_USER = "movielens"
# Azurite's published development account and key (the same in every Azurite): not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connections(values: dict[str, str]) -> dict[str, dict]:
    """Airflow's LocalFilesystemBackend format: connection id -> connection."""
    return {
        "aws_default": {"conn_type": "aws", "login": MINIO_ROOT_USER, "password": values["minio_root_password"],
                        "extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}},
        "wasb_default": {"conn_type": "wasb", "extra": {"connection_string": (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://azurite:10000/devstoreaccount1;")}},
        "movielens_serving": {"conn_type": "postgres", "host": "postgres", "port": 5432, "login": POSTGRES_USER,
                              "password": values["postgres_password"], "schema": SERVING_DATABASE},
    }


def make(folder: Path) -> dict[str, str]:
    """Create the missing secrets in ``folder`` (mode 0700; files 0644: a container's user must read its
    bind-mounted copy, and the folder keeps other host users out); returns every value."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    values = {}
    for name in PASSWORDS:
        path = folder / name
        if not path.exists():
            # URL-safe characters only: the database password goes into a SQLAlchemy URL unquoted.
            path.write_text(secrets.token_urlsafe(48 if name == "airflow_jwt_secret" else 24))
        path.chmod(0o644)
        values[name] = path.read_text().strip()
    target = folder / CONNECTIONS
    target.write_text(json.dumps(connections(values), indent=2) + "\n")
    target.chmod(0o644)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parents[1] / "secrets"))
    folder = Path(parser.parse_args(argv).dir)
    make(folder)
    print(f"secrets in {folder}: {', '.join((*PASSWORDS, CONNECTIONS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
