"""A class-data-sharing archive of the classes a local Spark job loads, for the many short Spark JVMs of
the tests (each ``spark-submit`` of a run, the fake clusters' jobs, the tests' SparkSession).

Java's AppCDS (JDK 13+) maps classes from an archive instead of reading and verifying them from Spark's
jars: ``spark-submit`` of the daily job on the tiny data set takes about 15 s less here (72-78 s -> 56-65 s;
bench/RESULTS.md, "Test suite").
The archive comes from one daily run of the same data with ``-XX:ArchiveClassesAtExit`` and suits exactly
the JVM, Spark jars and JVM options it was made with, which its file name hashes. A JVM with another class
path ignores it (with a warning) and runs as it would without.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DS = "2026-01-01"


def _fingerprint(java_options: str) -> str:
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True).stderr
    jars = sorted(p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    return hashlib.sha256("\n".join([java, *jars, java_options]).encode()).hexdigest()[:16]


def archive_path(java_options: str, folder: Path) -> Path:
    """Where the archive for JVMs started with ``java_options`` is (or will be) in ``folder``."""
    return folder / f"spark-{_fingerprint(java_options)}.jsa"


def archive(java_options: str, folder: Path, make: bool = True) -> Path | None:
    """The archive in ``folder`` for JVMs started with ``java_options``; if there is none, made first
    (about 100 s; concurrent callers, such as test processes side by side, wait for the one that makes it)
    or, with ``make=False``, None."""
    import fcntl

    path = archive_path(java_options, folder)
    if path.exists():
        return path
    if not make:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            _make(path, java_options)
    return path


def _make(path: Path, java_options: str) -> None:
    from movielens.compute import job_arguments
    from movielens.ingest import synthetic
    from spark_jobs.common.spec import JobSpec

    partial = path.with_name(f"{path.name}.partial")  # renamed when whole: a JVM never maps half an archive
    log = path.with_suffix(".log")
    print(f"making {path} (once per JVM, Spark and JVM options); log: {log}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        synthetic.generate_size(lake / "validated" / f"ds={DS}", "tiny", seed=7, end=dt.date.fromisoformat(DS))
        command = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]",
                   "--conf", "spark.ui.showConsoleProgress=false", str(ROOT / "spark_jobs" / "daily.py"),
                   *job_arguments(lake.as_uri(), DS, JobSpec.build({"tune": False}))]
        env = {**os.environ, "SPARK_SUBMIT_OPTS": f"{java_options} -XX:ArchiveClassesAtExit={partial}"}
        with log.open("w") as out:
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    if done.returncode != 0 or not partial.exists():
        raise RuntimeError(f"making the Spark class archive failed (exit {done.returncode}); see {log}")
    partial.replace(path)


def make_in_background(java_options: str, folder: Path):
    """Start making the archive in a thread (None when it exists): JVMs started meanwhile run without it.
    Join the thread before the process ends; a failure shows in the next :func:`archive` call."""
    import threading

    if archive_path(java_options, folder).exists():
        return None

    def make() -> None:
        try:
            archive(java_options, folder)
        except Exception as err:  # noqa: BLE001 - reported again by whoever needs the archive
            print(f"the Spark class archive was not made: {err}", file=sys.stderr)

    thread = threading.Thread(target=make, name="spark-class-archive", daemon=True)
    thread.start()
    return thread


def naming_options(java_options: str, folder: Path) -> str:
    """``java_options`` naming the archive, made or not yet: a JVM started before it exists runs without it
    (a missing ``SharedArchiveFile`` is no error under the default ``-Xshare:auto``)."""
    return f"{java_options} -XX:SharedArchiveFile={archive_path(java_options, folder)}"


def java_options(java_options: str, folder: Path, make: bool = True) -> str:
    """``java_options`` with the archive that suits them (if there is one, with ``make=False``)."""
    path = archive(java_options, folder, make)
    return f"{java_options} -XX:SharedArchiveFile={path}" if path else java_options
