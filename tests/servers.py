"""Real local servers for the tests, started and stopped by the tests themselves, on 127.0.0.1.

- :class:`MotoS3` : moto in server mode (S3, and the other AWS APIs moto serves, e.g. EMR), in a
  thread of the test process.
- :class:`Azurite`: the Azure Storage emulator's blob service (npm package ``azurite``, installed by
  ``make install`` into ``tools/azurite/node_modules``), as a child process.
- :class:`Postgres`: a throwaway PostgreSQL cluster (Debian's ``postgresql``, installed by ``make install``)
  made with ``initdb`` and run by ``postgres`` itself, as a child process, with password authentication.

Ports are chosen free at run time, never fixed. Each server hands out Airflow connections as the
JSON an ``AIRFLOW_CONN_<ID>`` variable holds, so a test can give them to the ``airflow`` command as
they are. The pytest fixtures at the end (session scope: one server per test session) are imported by
``tests/conftest.py``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

# One definition of "a free port" for the local tooling and the tests.
from devenv.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
AZURITE_DIR = ROOT / "tools" / "azurite"
AZURITE_BLOB = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
# Where Azurite defines its development account (name and the well-known key): read, never typed.
AZURITE_CONSTANTS = AZURITE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "utils" / "constants.js"

AWS_REGION = "us-east-1"


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def unique_name(prefix: str) -> str:
    """A bucket or container name, valid for both S3 and Azure (lower case, digits, dashes)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class MotoS3:
    """moto's server (``ThreadedMotoServer``) on a free port of 127.0.0.1."""

    access_key = "testing-access-key"
    secret_key = "testing-secret-key"

    def __init__(self, region: str = AWS_REGION):
        self.region = region
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> "MotoS3":
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_for_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "MotoS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def connection(self) -> dict:
        """An Airflow ``aws`` connection to this server (fake keys; the endpoint in the extra)."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": self.secret_key,
            "extra": {"endpoint_url": self.endpoint, "region_name": self.region},
        }

    def connection_json(self) -> str:
        return json.dumps(self.connection())

    def client(self, service: str = "s3"):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or unique_name("lake")
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", []))

    def secrets_backend_env(self, connections: dict[str, dict]) -> dict[str, str]:
        """Store Airflow connections in this server's Secrets Manager (under a fresh prefix); returns the
        environment that makes Airflow read connections from there (``SecretsManagerBackend``), as the
        README's "Secrets" section sets it up, with this server as the endpoint."""
        prefix = unique_name("airflow") + "/connections"
        client = self.client("secretsmanager")
        for conn_id, conn in connections.items():
            client.create_secret(Name=f"{prefix}/{conn_id}", SecretString=json.dumps(conn))
        kwargs = {"connections_prefix": prefix, "variables_prefix": None, "config_prefix": None,
                  "endpoint_url": self.endpoint, "region_name": self.region}
        return {
            "AIRFLOW__SECRETS__BACKEND": "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
            # The backend's own AWS identity (an instance role in a deployment): the server's fake keys.
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def azurite_account() -> tuple[str, str]:
    """The emulator's development account name and key, as Azurite's own package defines them."""
    if not AZURITE_CONSTANTS.exists():
        raise FileNotFoundError(f"{AZURITE_CONSTANTS} is missing: run `make install` (npm ci in tools/azurite)")
    text = AZURITE_CONSTANTS.read_text()
    name = re.search(r'EMULATOR_ACCOUNT_NAME = "([^"]+)"', text)
    key = re.search(r'EMULATOR_ACCOUNT_KEY_STR = "([^"]+)"', text)
    if not (name and key):
        raise RuntimeError(f"cannot find the development account in {AZURITE_CONSTANTS} (Azurite changed?)")
    return name.group(1), key.group(1)


class CuttableProxy:
    """A TCP proxy on a free port of 127.0.0.1 to ``port``, whose :meth:`cut` drops every open connection and
    refuses new ones until :meth:`restore`: the storage network gone mid-request, the server's data intact."""

    def __init__(self, port: int):
        import threading

        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # (a refused connection, as from a host that is gone)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


class Azurite:
    """Azurite's blob service, in memory, on a free port of 127.0.0.1; its own process group."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.account, self.key = azurite_account()
        self.endpoint = f"http://127.0.0.1:{self.port}/{self.account}"
        self.log = self.workdir / "azurite.log"
        self._proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return AZURITE_BLOB.exists() and AZURITE_CONSTANTS.exists()

    def start(self) -> "Azurite":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(AZURITE_BLOB),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--inMemoryPersistence",
            # In-memory extents otherwise may take half the machine's RAM.
            "--extentMemoryLimit", "512",
            # Otherwise it reports to an outside host.
            "--disableTelemetry",
            # The Python SDK may speak a newer API version than the emulator knows.
            "--skipApiVersionCheck",
            "--loose",
        ]
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        wait_for_port(self.port, timeout=60, proc=self._proc, log=self.log)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is Azurite's alone
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def connection(self) -> dict:
        """An Airflow ``wasb`` connection; ``abfs://`` paths take the account from its connection string."""
        return {"conn_type": "wasb", "extra": {"connection_string": self.connection_string}}

    def connection_json(self) -> str:
        return json.dumps(self.connection())

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str | None = None) -> str:
        name = name or unique_name("lake")
        self.service().create_container(name)
        return name

    def blobs(self, container: str, prefix: str = "") -> list[str]:
        client = self.service().get_container_client(container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix or None))


POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # Debian's layout, newest first


def postgres_bin(name: str) -> str:
    for folder in POSTGRES_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"PostgreSQL's {name} is not installed: run `make install` (apt-get install postgresql)")


class Postgres:
    """A PostgreSQL cluster of its own on a free port of 127.0.0.1, with one database and a password user.

    PostgreSQL refuses to run as root: when the tests run as root, the cluster's files belong to the
    ``postgres`` system user (made by Debian's package) and the server runs as that user.
    """

    user = "movielens"
    database = "movielens"

    def __init__(self):
        import tempfile

        # Not under pytest's tmp folder: that is private to root, and the server may run as ``postgres``.
        self.workdir = Path(tempfile.mkdtemp(prefix="movielens-postgres-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self.password = uuid.uuid4().hex
        self.log = self.workdir / "postgres.log"
        self._proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return bool(POSTGRES_BIN_DIRS)

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> "Postgres":
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.workdir, "postgres")
            shutil.chown(pwfile, "postgres")
        done = subprocess.run(
            [*self._as_owner(), postgres_bin("initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
             "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8"],
            capture_output=True, text=True,
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        cmd = [*self._as_owner(), postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
               "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.workdir}",
               "-c", "max_connections=200", "-c", "fsync=off"]
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout=60, proc=self._proc, log=self.log)
        self._wait_ready()
        self.execute(f"CREATE DATABASE {self.database}", database="postgres")
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1", database="postgres")
                return
            except Exception:  # the port opens a moment before the server accepts logins
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def execute(self, sql: str, database: str | None = None) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Postgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def sqlalchemy_url(self, database: str | None = None) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{database or self.database}"

    def connection(self, database: str | None = None) -> dict:
        """An Airflow ``postgres`` connection to the database."""
        return {"conn_type": "postgres", "host": "127.0.0.1", "port": self.port, "login": self.user,
                "password": self.password, "schema": database or self.database}

    def connection_json(self, database: str | None = None) -> str:
        return json.dumps(self.connection(database))

    def create_database(self, name: str | None = None) -> str:
        name = (name or unique_name("db")).replace("-", "_")
        self.execute(f"CREATE DATABASE {name}", database="postgres")
        return name


# --- pytest fixtures (imported by tests/conftest.py) ------------------------------------------------
@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode for the whole session (S3, EMR, ...)."""
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    """Azurite's blob service for the whole session. Skipped when not installed, except in CI."""
    if not Azurite.available():
        message = f"Azurite is not installed in {AZURITE_DIR}: run `make install` (npm ci)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL cluster for the whole session; each test takes its own database from it."""
    if not Postgres.available():
        message = "PostgreSQL is not installed: run `make install` (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Postgres() as server:
        yield server
