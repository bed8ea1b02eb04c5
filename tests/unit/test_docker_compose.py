"""docker-compose.yaml: Docker does not run here, so the file is checked as Compose itself reads it.

``docker-compose config`` (Debian's Compose v1, installed by ``make install``) validates the file against
the Compose schema, resolves the YAML anchors and fills in the variables from a ``.env`` made from
``.env.example``; the checks then read that resolved model: the Airflow 3 services of Airflow's official
file, our own image, a healthcheck on every service, start-up order, and no secret in the file itself.
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
    done = subprocess.run([compose, "config"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"docker-compose config rejects the file:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def test_the_airflow_3_topology_runs_from_our_own_image(resolved):
    services = resolved["services"]
    assert set(services) == set(AIRFLOW_SERVICES) | OTHER_SERVICES
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] in (command, [command]), name
        assert service["image"] == "movielens-platform:latest" and "build" in service, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert not any("_PIP_ADDITIONAL_REQUIREMENTS" in key for key in env), "packages come from the image"
    dockerfile = (ROOT / "Dockerfile").read_text()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [airflow_pin] = [d.split("==", 1)[1] for d in dependencies if d.startswith("apache-airflow==")]
    assert re.search(rf"^FROM apache/airflow:{re.escape(airflow_pin)}-python3\.11$", dockerfile, re.M)
    assert "requirements.lock" in dockerfile


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


def test_no_secret_is_written_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE.read_text())
    text = COMPOSE.read_text()
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):  # a path to a secret is not one
                assert re.fullmatch(r"\$\{\w+\}", str(value)), f"{name}: {key} must come from .env, got {value!r}"
    assert "AccountKey=" not in text and '"password"' not in text
    # Every variable the file needs without a default is in .env.example, so `cp .env.example .env` works.
    # (``$${X}`` is an escaped shell variable, and comments are not read.)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"(?<!\$)\$\{(\w+)\}", body))
    assert needed <= set(env_example()), needed - set(env_example())


def test_connections_for_the_side_servers_come_from_env_example(resolved):
    env = resolved["services"]["airflow-scheduler"]["environment"]
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["extra"]["endpoint_url"] == "http://minio:9000"
    assert (aws["login"], aws["password"]) == (env_example()["MINIO_ROOT_USER"], env_example()["MINIO_ROOT_PASSWORD"])
    wasb = json.loads(env["AIRFLOW_CONN_WASB_DEFAULT"])
    assert "BlobEndpoint=http://azurite:10000/devstoreaccount1;" in wasb["extra"]["connection_string"]
    serving = json.loads(env["AIRFLOW_CONN_MOVIELENS_SERVING"])
    assert (serving["host"], serving["schema"], serving["password"]) == ("postgres", "movielens", env_example()["POSTGRES_PASSWORD"])
    assert env["MOVIELENS_SERVING_CONN_ID"] == "movielens_serving"
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
    # The serving database is made by the postgres container's first start.
    init = resolved["services"]["postgres"]["volumes"]
    assert any(v.split(":")[1] == "/docker-entrypoint-initdb.d" for v in init)
    assert (ROOT / "docker" / "postgres-init" / "10-serving-database.sh").stat().st_mode & 0o111
