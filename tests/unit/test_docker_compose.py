"""docker-compose.yaml: Docker does not run here, so the file is checked as Compose itself reads it.

``docker-compose config`` (Debian's Compose v1, installed by ``make install``) validates the file against
the Compose schema, resolves the YAML anchors and fills in the variables from a ``.env`` made from
``.env.example`` and the secrets ``docker/make_secrets.py`` writes; the checks then read that resolved model:
the Airflow 3 services of Airflow's official file, our own image, FAB's auth manager, task logs on a volume,
a healthcheck on every service, start-up order, and each secret a file mounted only where it is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
OTHER_SERVICES = {"postgres", "airflow-init", "minio", "minio-init", "azurite", "azurite-init", "mailpit"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCOUNTKEY|_KEY$", re.IGNORECASE)


def make_secrets():
    import importlib.util

    loaded = importlib.util.spec_from_file_location("make_secrets", ROOT / "docker" / "make_secrets.py")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """The model ``docker-compose config`` makes of the file, with .env.example as the .env."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed: run `make install` (apt-get install docker-compose)")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, folder / "docker-compose.yaml")
    shutil.copy(ENV_EXAMPLE, folder / ".env")
    values = make_secrets().make(folder / "secrets")
    done = subprocess.run([compose, "config"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"docker-compose config rejects the file:\n{done.stderr}"
    model = yaml.safe_load(done.stdout)
    model["x-secret-values"] = values
    model["x-secrets-dir"] = folder / "secrets"
    return model


def test_the_airflow_3_topology_runs_from_our_own_image(resolved):
    services = resolved["services"]
    assert set(services) == set(AIRFLOW_SERVICES) | OTHER_SERVICES
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] in (command, [command]), name
        assert service["image"] == "movielens-platform:latest" and "build" in service, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env, "the URL holds the password: built from its secret"
        command = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
        assert "postgresql+psycopg2://" in command and "cat /run/secrets/postgres_password" in command
        assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /run/secrets/airflow_jwt_secret"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        assert "logs:/opt/airflow/logs:rw" in service["volumes"], "task logs on the shared volume: the UI reads them"
        assert not any("_PIP_ADDITIONAL_REQUIREMENTS" in key for key in env), "packages come from the image"
    dockerfile = (ROOT / "Dockerfile").read_text()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [airflow_pin] = [d.split("==", 1)[1] for d in dependencies if d.startswith("apache-airflow==")]
    assert re.search(rf"^FROM apache/airflow:{re.escape(airflow_pin)}-python3\.11$", dockerfile, re.M)
    assert "requirements.lock" in dockerfile
    # The auth manager's provider is pinned in the runtime dependencies and so in the image's lock.
    [fab] = [d for d in dependencies if d.startswith("apache-airflow-providers-fab==")]
    assert f"\n{fab}\n" in (ROOT / "requirements.lock").read_text()


def test_every_service_has_a_healthcheck_and_starts_after_what_it_needs(resolved):
    services = resolved["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            expected = "service_completed_successfully" if needed.endswith("-init") else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {needed}"
    for name in AIRFLOW_SERVICES:
        assert set(services[name]["depends_on"]) == {"postgres", "airflow-init"}, name
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["azurite-init"]["depends_on"] == {"azurite": {"condition": "service_healthy"}}


def test_the_side_servers_are_pinned_and_published(resolved):
    services = resolved["services"]
    for name, service in services.items():
        image = service["image"]
        if name.startswith("airflow-") or name == "azurite-init":
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name} image is not pinned: {image}"
    azurite_version = json.loads((ROOT / "tools" / "azurite" / "package-lock.json").read_text())["packages"]["node_modules/azurite"]["version"]
    assert services["azurite"]["image"] == f"mcr.microsoft.com/azure-storage/azurite:{azurite_version}", "same Azurite as the tests"
    published = {name: {str(p["published"]) for p in s.get("ports", [])} for name, s in services.items()}
    assert published["airflow-apiserver"] == {"8080"}
    assert published["mailpit"] == {"8025"}
    assert published["minio"] == {"9000", "9001"}
    assert published["azurite"] == {"10000"}


def test_no_secret_is_written_in_the_compose_file_or_in_env_example():
    raw = yaml.safe_load(COMPOSE.read_text())
    text = COMPOSE.read_text()
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            # A path to a secret, a command that reads one, or the secrets backend's class is not one.
            if SECRET_NAME.search(key) and not key.endswith(("_FILE", "_CMD")) and not key.startswith("AIRFLOW__SECRETS__"):
                raise AssertionError(f"{name}: {key}={value!r} is a secret in the compose file")
    assert "AccountKey=" not in text and '"password"' not in text
    assert [k for k in env_example() if SECRET_NAME.search(k)] == [], "secrets are files of ./secrets/, not .env"
    # Every variable the file needs without a default is in .env.example, so `cp .env.example .env` works.
    # (``$${X}`` is an escaped shell variable, and comments are not read.)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"(?<!\$)\$\{(\w+)\}", body))
    assert needed <= set(env_example()), needed - set(env_example())


def test_each_secret_is_a_file_mounted_only_where_it_is_needed(resolved):
    secrets = make_secrets()
    assert set(resolved["secrets"]) == {*secrets.PASSWORDS, secrets.CONNECTIONS}
    for name, secret in resolved["secrets"].items():
        assert Path(secret["file"]) == resolved["x-secrets-dir"] / name
    airflow = {"postgres_password", "airflow_jwt_secret", "airflow_connections"}
    expected = {
        **{name: airflow for name in AIRFLOW_SERVICES},
        "airflow-init": airflow | {"airflow_admin_password", "airflow_reader_password"},
        "postgres": {"postgres_password"}, "minio": {"minio_root_password"}, "minio-init": {"minio_root_password"},
        "azurite-init": {"airflow_connections"}, "azurite": set(), "mailpit": set(),
    }
    mounted = {name: {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
               for name, service in resolved["services"].items()}
    assert mounted == expected
    init = resolved["services"]["airflow-init"]["command"][-1]
    assert "airflow users create --username admin --role Admin" in init
    assert "airflow users create --username reader --role Viewer" in init
    # make_secrets keeps what exists and writes URL-safe values (the DB password goes into a URL).
    again = secrets.make(resolved["x-secrets-dir"])
    assert again == resolved["x-secret-values"]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32,}", v) for v in again.values())


def test_connections_for_the_side_servers_come_from_the_connections_secret(resolved):
    env = resolved["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__SECRETS__BACKEND"] == "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    assert json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"]) == {"connections_file_path": "/run/secrets/airflow_connections"}
    values = resolved["x-secret-values"]
    connections = json.loads((resolved["x-secrets-dir"] / "airflow_connections").read_text())
    aws = connections["aws_default"]
    assert aws["extra"]["endpoint_url"] == "http://minio:9000"
    assert (aws["login"], aws["password"]) == (env_example()["MINIO_ROOT_USER"], values["minio_root_password"])
    wasb = connections["wasb_default"]
    assert "BlobEndpoint=http://azurite:10000/devstoreaccount1;" in wasb["extra"]["connection_string"]
    serving = connections["movielens_serving"]
    assert (serving["host"], serving["schema"], serving["login"], serving["password"]) == (
        "postgres", "movielens", env_example()["POSTGRES_USER"], values["postgres_password"])
    assert env["MOVIELENS_SERVING_CONN_ID"] == "movielens_serving"
    assert not [k for k in env if k.startswith("AIRFLOW_CONN_") and k not in ("AIRFLOW_CONN_SPARK_DEFAULT", "AIRFLOW_CONN_SMTP_DEFAULT")]
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
    # The serving database is made by the postgres container's first start.
    init = resolved["services"]["postgres"]["volumes"]
    assert any(v.split(":")[1] == "/docker-entrypoint-initdb.d" for v in init)
    assert (ROOT / "docker" / "postgres-init" / "10-serving-database.sh").stat().st_mode & 0o111


def test_every_airflow_service_has_the_projects_openlineage_settings(resolved):
    from movielens import lineage

    for name in AIRFLOW_SERVICES:
        env = resolved["services"][name]["environment"]
        for key, value in lineage.AIRFLOW_SETTINGS.items():
            assert env.get(key) == value, (name, key)
        transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
        assert transport["type"] == "file" and transport["log_file_path"].startswith("/opt/airflow/logs/"), name
