"""Shared fixtures: a throwaway lake, a local SparkSession, a real local SMTP server."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

# Real local servers (moto, Azurite, PostgreSQL) as session fixtures; see tests/servers.py.
from tests.servers import azurite_server, moto_server, postgres_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
# Spark's Python workers must run this interpreter (it has numpy/pandas); bind Spark to loopback.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
# Every JVM the tests start (the SparkSession below, each spark-submit of a DAG run, the fake clusters' jobs)
# runs the tests' small data, where the JIT's start-up dominates: the client compiler alone and the serial
# collector cut a daily run of the tiny data set from 111 s to 87 s here. Java's arithmetic is the same
# under either compiler, so the results are too. (A deeper thread stack: the client compiler's frames are
# larger, and Spark's plans recurse deeply.) The archive of Spark's classes takes ~15 s more off each job.
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss16m"
# Airflow imported by the tests (DagBag) keeps its files in the checkout, not in ~/airflow (one home per
# pytest-xdist worker: each has its own SQLite DB).
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under pytest-xdist
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "var" / (f"airflow-tests-{WORKER}" if WORKER else "airflow-tests")))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


CLASS_ARCHIVES = ROOT / "var" / "spark-classes"
_archive_maker = []  # the thread making the archive of Spark's classes, if this process started one


def pytest_collection_finish(session):
    """Before the first JVM starts: the JVM options above, with the archive of Spark's classes
    (devenv.spark_classes). When a selected test is marked spark or e2e and the archive is missing, it is
    made in the background (JVMs started meanwhile run without it; the ``spark`` fixture waits for it).
    A SPARK_SUBMIT_OPTS already set is kept."""
    if "SPARK_SUBMIT_OPTS" in os.environ:
        return
    from devenv import spark_classes

    runs_spark = any(item.get_closest_marker("spark") or item.get_closest_marker("e2e") for item in session.items)
    if runs_spark:
        _archive_maker.extend(t for t in [spark_classes.make_in_background(JAVA_OPTIONS, CLASS_ARCHIVES)] if t)
        os.environ["SPARK_SUBMIT_OPTS"] = spark_classes.naming_options(JAVA_OPTIONS, CLASS_ARCHIVES)
    else:
        os.environ["SPARK_SUBMIT_OPTS"] = spark_classes.java_options(JAVA_OPTIONS, CLASS_ARCHIVES, make=False)


def pytest_sessionfinish(session):
    for thread in _archive_maker:
        thread.join()


@pytest.fixture
def lake_url(tmp_path, monkeypatch) -> str:
    """A file:// lake in a temporary folder, set as MOVIELENS_LAKE_URL for the test."""
    url = (tmp_path / "lake").as_uri()
    monkeypatch.setenv("MOVIELENS_LAKE_URL", url)
    return url


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    if "-XX:SharedArchiveFile=" in os.environ.get("SPARK_SUBMIT_OPTS", "") and _archive_maker:
        from devenv import spark_classes

        spark_classes.archive(JAVA_OPTIONS, CLASS_ARCHIVES)  # the session's JVM maps it: wait for it once

    session = (
        SparkSession.builder.master("local[2]")
        .appName("movielens-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j logs from __del__ after pytest has closed its capture streams: keep it quiet.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture
def mailbox(tmp_path):
    from devenv.mailbox import Mailbox

    with Mailbox(tmp_path / "mail") as box:
        yield box
