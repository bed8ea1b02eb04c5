"""What every cluster backend shares: the Spark code shipped to the cluster, and run identities.

A cluster gets ``spark_jobs/`` as it is in this checkout (pyspark + standard library only): the entry
script (``spark_jobs/daily.py``) and, for ``spark-submit --py-files``, a zip of the whole package, so
``import spark_jobs.common`` works on the driver and the executors. The code goes to a folder named
by a hash of its content (``<base>/<version>/...``): a run always executes exactly the code that was
uploaded for it, concurrent runs of different versions do not overwrite each other, and uploading the
same code again writes the same objects.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "spark_jobs"
# Fixed zip entry time: the same code gives the same zip bytes.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class JobCode:
    """The files of ``spark_jobs/`` (relative paths ``spark_jobs/...``) and their content hash."""

    files: dict[str, bytes]

    @classmethod
    def from_dir(cls, jobs_dir: Path) -> "JobCode":
        jobs_dir = Path(jobs_dir)
        if not (jobs_dir / "__init__.py").is_file():
            raise FileNotFoundError(f"{jobs_dir} is not the spark_jobs package (no __init__.py)")
        files = {
            f"{PACKAGE}/{p.relative_to(jobs_dir).as_posix()}": p.read_bytes()
            for p in sorted(jobs_dir.rglob("*.py"))
            if "__pycache__" not in p.parts
        }
        return cls(files)

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()[:16]

    def entry(self, job: str) -> str:
        """Relative path of an entry point (``daily.py`` -> ``spark_jobs/daily.py``)."""
        rel = f"{PACKAGE}/{job}"
        if rel not in self.files:
            raise FileNotFoundError(f"no entry point {job!r} in {PACKAGE}/")
        return rel

    def zip_bytes(self) -> bytes:
        """The package as a zip for ``--py-files`` (deterministic bytes)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, self.files[name])
        return buffer.getvalue()


def idempotency_token(dag_id: str, task_id: str, ds: str, clear_number: int = 0) -> str:
    """One token per (DAG, task, date, clear of the run): a retry of the task gets the run its first try started
    back (Databricks and EMR Serverless return the run a token already started), while clearing the run in
    Airflow (which counts clears) submits a new one.

    Both services accept at most 64 characters; longer tokens are hashed.
    """
    token = f"{dag_id}.{task_id}.{ds}.{clear_number}"
    if len(token) <= 64:
        return token
    return f"{ds}.{hashlib.sha256(token.encode()).hexdigest()[:53]}"


def run_token(context, task_id: str) -> str:
    """:func:`idempotency_token` of a task in its Airflow context (the DAG run's ``clear_number``)."""
    clear_number = getattr(context.get("dag_run"), "clear_number", 0) or 0
    return idempotency_token(context["dag"].dag_id, task_id, context["ds"], clear_number)
