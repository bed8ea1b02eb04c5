"""Local Spark on a remote lake: stage what a job reads on local disk, run it there, upload what it wrote.

Local Spark here has no S3 or Azure connectors (and no way to fetch hadoop-aws jars), so when the lake
is ``s3://`` or ``abfs://`` and compute is ``local``, the Spark task

1. copies the partitions the job reads from the lake into a fresh local folder (``MOVIELENS_STAGING_DIR``,
   default ``var/staging``), keeping the lake's layout;
2. runs the job with ``--lake-root file://<that folder>``;
3. uploads the partitions the job wrote for ``ds`` back to the lake, each replacing the lake's partition
   as a whole (old part files removed first, Spark's ``_SUCCESS`` marker uploaded last), so a rerun
   leaves exactly what one run leaves; a declared output the job did not write (e.g. the bronze table
   of a kind with no validated file that day) is removed from the lake, as Spark does on ``file://``;
4. removes the local folder.

Only the partitions a job needs move (the lists below follow what ``spark_jobs/`` reads and writes);
copies stream file by file (fsspec ``get``/``put``, concurrent for object stores), never whole
partitions in memory. Spark's checksum files (``.*.crc``) are not uploaded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.common import layout

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Part:
    """One partition of the lake for the run's date: a table's ``ds=D`` or a dated zone's ``ds=D[/sub]``."""

    zone: str
    table: str | None = None
    sub: str | None = None

    def rel(self, ds: str) -> str:
        if self.table:
            return layout.table_dir("", self.zone, self.table, ds)
        return layout.join(layout.zone_dir("", self.zone, ds), self.sub or "")


@dataclass(frozen=True)
class History:
    """Every partition of a table with ds < D (``include_ds``: ds <= D)."""

    zone: str
    table: str
    include_ds: bool = False


@dataclass(frozen=True)
class File:
    """One file of a dated zone's ``ds=D`` (e.g. ``reports/ds=D/spark_job.json``)."""

    zone: str
    name: str

    def rel(self, ds: str) -> str:
        return layout.join(layout.zone_dir("", self.zone, ds), self.name)


@dataclass(frozen=True)
class Latest:
    """The latest partition of a table with ds < D (what the daily checks compare D with)."""

    zone: str
    table: str


@dataclass(frozen=True)
class Served:
    """A table partition (or, with ``name``, one file of a dated zone) of the served date before D: the date
    whose lists were served when D's ratings came (``layout.served_date``), for the backtest and the gate."""

    zone: str
    table: str | None = None
    name: str | None = None


def _tables(zone: str, names) -> list[Part]:
    return [Part(zone, name) for name in names]


SILVER_TABLES = ("ratings", "movies", "user_stats", "movie_stats")
GOLD_ANALYSIS = ("popular_movies", "ratings_by_year", "rating_distribution", "fallback_movies")

# What each entry point of spark_jobs/ reads for ds=D, beyond what it writes itself first. bronze.py
# reads validated/ds=D and, for the unknown-movie check, bronze/movies with ds <= D (its own ds=D
# partition it writes before); silver.py reads bronze ratings and movies with ds <= D
# (extract_history); gold/train/similar read silver and models of ds=D.
JOB_INPUTS: dict[str, list] = {
    "bronze.py": [Part(layout.VALIDATED), History(layout.BRONZE, "movies")],
    "silver.py": [History(layout.BRONZE, "ratings", True), History(layout.BRONZE, "movies", True)],
    "gold.py": [Part(layout.SILVER, "ratings"), Part(layout.SILVER, "movie_stats")],
    "train.py": [Part(layout.SILVER, "ratings"), Part(layout.SILVER, "movies")],
    "similar.py": [Part(layout.MODELS, sub="als_explicit"), Part(layout.SILVER, "movies")],
    # All stages in one session: bronze writes ds=D before silver reads history <= D. The checks read the
    # latest silver before D and the served date's lists, ratings, publication record and parameters.
    "daily.py": [Part(layout.VALIDATED), History(layout.BRONZE, "movies"), History(layout.BRONZE, "ratings"),
                 Latest(layout.SILVER, "ratings"), Latest(layout.SILVER, "movies"),
                 Served(layout.GOLD, "recommendations"), Served(layout.SILVER, "ratings"),
                 Served(layout.REPORTS, name=layout.PUBLICATION), Served(layout.MODELS, name=layout.MODEL_PARAMS)],
}

# What each writes for ds=D. Any other ds=D table partition found in the staging folder afterwards (and
# not staged in) is uploaded too, so a new gold table needs no change here.
JOB_OUTPUTS: dict[str, list] = {
    "bronze.py": _tables(layout.BRONZE, layout.FILE_KINDS),
    "silver.py": _tables(layout.SILVER, SILVER_TABLES),
    "gold.py": _tables(layout.GOLD, GOLD_ANALYSIS),
    "train.py": _tables(layout.GOLD, ("recommendations", "model_metrics", "model_tuning")) + [Part(layout.MODELS)],
    "similar.py": _tables(layout.GOLD, ("similar_movies",)),
}
JOB_OUTPUTS["daily.py"] = [
    *JOB_OUTPUTS["bronze.py"],
    *JOB_OUTPUTS["silver.py"],
    *JOB_OUTPUTS["gold.py"],
    *JOB_OUTPUTS["train.py"],
    *JOB_OUTPUTS["similar.py"],
    *_tables(layout.GOLD, ("backtest", "drift")),
    File(layout.REPORTS, layout.SPARK_REPORT),
    File(layout.REPORTS, layout.PUBLICATION),
]


def _is_hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


class LocalStaging:
    """Stage one Spark job's inputs from a remote lake to local disk and its outputs back.

    Use as a context manager (the local folder is removed on exit)::

        with LocalStaging(lake, "daily.py", ds, settings.staging_dir) as stage:
            stage.download()
            run_spark(lake_root=stage.spark_root)
            stage.upload()
    """

    def __init__(self, lake, job: str, ds: str, base_dir: Path):
        if job not in JOB_INPUTS:
            raise ValueError(f"no staging plan for spark job {job!r}; known: {sorted(JOB_INPUTS)}")
        self.lake = lake
        self.job = job
        self.ds = layout.check_ds(ds)
        self.base_dir = Path(base_dir)
        self.root: Path | None = None
        self.staged_in: set[str] = set()  # partitions (relative paths) copied in
        self.stats: dict[str, dict[str, float]] = {}

    # --- the local folder ------------------------------------------------------------------------
    def __enter__(self) -> "LocalStaging":
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.job.removesuffix('.py')}-{self.ds}-", dir=self.base_dir))
        return self

    def __exit__(self, *exc) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    @property
    def spark_root(self) -> str:
        """The staging folder as the ``--lake-root`` of the job."""
        if self.root is None:
            raise RuntimeError("the staging folder exists only inside the `with` block")
        return self.root.resolve().as_uri()

    # --- remote helpers ----------------------------------------------------------------------------
    def _remote(self, rel: str):
        """(fsspec filesystem, path as that filesystem names it) of a lake path."""
        path = self.lake.path(rel)
        return path.fs, path.path.rstrip("/")

    @staticmethod
    def _find(fs, root: str) -> dict[str, int]:
        """Files under ``root`` (recursive) -> size; nothing when it does not exist."""
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        inside = root.rstrip("/") + "/"
        return {
            p.rstrip("/"): int(info.get("size") or 0)
            for p, info in found.items()
            if info.get("type") != "directory" and p.startswith(inside)
        }

    # --- in ----------------------------------------------------------------------------------------
    def input_parts(self) -> list[str]:
        """Relative paths of the partitions and files the job reads (listing the lake for history tables)."""
        parts: list[str] = []
        served: str | None | bool = False  # looked up once, when a Served input asks
        for spec in JOB_INPUTS[self.job]:
            if isinstance(spec, History):
                dates = self.lake.table_dates(spec.zone, spec.table, self.ds)
                parts += [
                    layout.table_dir("", spec.zone, spec.table, d)
                    for d in dates
                    if spec.include_ds or d < self.ds
                ]
            elif isinstance(spec, Latest):
                earlier = [d for d in self.lake.table_dates(spec.zone, spec.table, self.ds) if d < self.ds]
                parts += [layout.table_dir("", spec.zone, spec.table, earlier[-1])] if earlier else []
            elif isinstance(spec, Served):
                if served is False:
                    before = (dt.date.fromisoformat(self.ds) - dt.timedelta(days=1)).isoformat()
                    served = self.lake.served_date("recommendations", before)
                if served:
                    parts.append(layout.table_dir("", spec.zone, spec.table, served) if spec.table
                                 else layout.join(layout.zone_dir("", spec.zone, served), spec.name))
            else:
                parts.append(spec.rel(self.ds))
        return list(dict.fromkeys(parts))

    def download(self) -> dict[str, float]:
        started = time.monotonic()
        fs = None
        rpaths: list[str] = []
        lpaths: list[str] = []
        total = 0
        for rel in self.input_parts():
            fs, remote = self._remote(rel)
            self.staged_in.add(rel)
            if rel.endswith(".json"):  # a single file (a record of the served date), if there is one
                if fs.exists(remote):
                    rpaths.append(remote)
                    lpaths.append(str(self.root / rel))
                    total += int(fs.size(remote) or 0)
                continue
            files = self._find(fs, remote)
            for rpath, size in files.items():
                inner = rpath[len(remote):].lstrip("/")
                if not inner or _is_hidden(inner):
                    continue
                rpaths.append(rpath)
                lpaths.append(str(self.root / rel / inner))
                total += size
        if rpaths:
            for lpath in lpaths:
                Path(lpath).parent.mkdir(parents=True, exist_ok=True)
            fs.get(rpaths, lpaths)
        self.stats["in"] = {"files": len(rpaths), "bytes": total, "seconds": round(time.monotonic() - started, 3)}
        log.info("staged %d files (%d bytes) of %s for %s ds=%s in %s: %s", len(rpaths), total, self.lake.url,
                 self.job, self.ds, self.root, self.stats["in"])
        return self.stats["in"]

    # --- out ---------------------------------------------------------------------------------------
    def output_parts(self) -> tuple[list[str], list[str]]:
        """(partitions to replace in the lake, single files to put), as relative paths."""
        declared = JOB_OUTPUTS[self.job]
        parts = [spec.rel(self.ds) for spec in declared if isinstance(spec, Part)]
        files = [spec.rel(self.ds) for spec in declared if isinstance(spec, File)]
        # Any other ds=D partition the job wrote (not staged in) goes too.
        partition = layout.partition(self.ds)
        for zone in layout.TABLE_ZONES:
            for found in sorted((self.root / zone).glob(f"*/{partition}")):
                rel = found.relative_to(self.root).as_posix()
                if rel not in parts and rel not in self.staged_in:
                    log.info("uploading undeclared output %s of %s", rel, self.job)
                    parts.append(rel)
        return parts, files

    def upload(self) -> dict[str, float]:
        """Replace the lake's ds=D output partitions by the job's; then put single files (the report)."""
        started = time.monotonic()
        parts, files = self.output_parts()
        uploaded = removed = total = 0
        for rel in parts:
            fs, remote = self._remote(rel)
            local = self.root / rel
            stale = sorted(self._find(fs, remote))
            if stale:
                fs.rm(stale)
                removed += len(stale)
            if not local.is_dir():
                if stale:
                    log.info("%s wrote no %s: removed it from the lake (%d files)", self.job, rel, len(stale))
                continue
            news = sorted(p for p in local.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(local).as_posix()))
            # Data first, Spark's completion markers last: a reader never sees a marker without its data.
            for batch in ([p for p in news if p.name != layout.COMPLETE_MARKER], [p for p in news if p.name == layout.COMPLETE_MARKER]):
                if batch:
                    fs.put([str(p) for p in batch], [f"{remote}/{p.relative_to(local).as_posix()}" for p in batch])
                    uploaded += len(batch)
                    total += sum(p.stat().st_size for p in batch)
        elapsed = round(time.monotonic() - started, 3)
        self.stats["out"] = {"files": uploaded, "bytes": total, "removed": removed, "seconds": elapsed}
        for rel in files:
            local = self.root / rel
            if not local.is_file():
                continue
            data = local.read_bytes()
            if rel.endswith(layout.SPARK_REPORT):
                # The job's report (paths relative to the lake root, true here too) says how staging went.
                doc = json.loads(data)
                doc["staging"] = {"local_compute_staged_through": "local disk", **self.stats}
                data = (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()
            fs, remote = self._remote(rel)
            fs.pipe_file(remote, data)
            uploaded += 1
            total += len(data)
        self.stats["out"] = {"files": uploaded, "bytes": total, "removed": removed,
                             "seconds": round(time.monotonic() - started, 3)}
        log.info("uploaded %d files (%d bytes) of %s ds=%s to %s, replacing %d: %s", uploaded, total, self.job,
                 self.ds, self.lake.url, removed, self.stats["out"])
        return self.stats["out"]
