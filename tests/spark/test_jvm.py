"""The JVM options the tests give every Spark JVM (tests/conftest.py) take effect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark


def test_the_spark_jvm_maps_the_archive_of_sparks_classes(spark):
    options = os.environ["SPARK_SUBMIT_OPTS"]
    if "-XX:SharedArchiveFile=" not in options:
        pytest.skip(f"SPARK_SUBMIT_OPTS was set outside the tests, without an archive: {options}")
    archive = options.split("-XX:SharedArchiveFile=", 1)[1].split()[0]
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    mapped = Path(f"/proc/{pid}/maps").read_text()
    assert Path(archive).is_file() and archive in mapped, f"JVM {pid} does not map {archive}"
