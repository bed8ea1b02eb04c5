"""The lake contract on the Airflow side: zone paths as ObjectStoragePath, and routing that loses nothing.

The layout itself (zone names, partitions, table paths) is defined once in
:mod:`spark_jobs.common.layout`, shared with the Spark jobs; this module adds storage access through
Airflow's ``ObjectStoragePath`` (fsspec), so one code path serves ``file://``, ``s3://`` and ``abfs://``.

Routing a landed file (:meth:`Lake.route`) is copy -> verify -> record -> clear:

1. copy the landed bytes to ``validated/ds=D/<name>`` or ``rejected/ds=D/<name>`` (skipped when the
   destination already holds the same bytes: a rerun after a crash);
2. verify the destination's size and SHA-256 against the landed file (a mismatch raises, landing kept);
3. write the routing record ``reports/ds=D/files/<name>.json`` (and, for a rejected file, the report
   ``rejected/ds=D/<stem>.report.json``), and remove a same-named copy from the other zone, which a
   new landing of that name supersedes;
4. if the policy is ``move`` (the default), delete the landed file.

A crash or kill between any two steps leaves the file in landing, its destination, or both; a rerun
finishes the job without duplicates.

Lake URLs and Spark URLs differ for Azure. The lake is given to Airflow as ``abfs://<container>/<prefix>``
and the storage account comes from the connection (``ObjectStoragePath`` reads ``scheme://NAME@...`` as
connection id NAME, so the Spark form must never reach it); Spark addresses the same place as
``abfss://<container>@<account>.dfs.core.windows.net/<prefix>``. :func:`spark_url` and
:func:`lake_url_from_spark` translate between the two (and between ``s3://`` and ``s3a://``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from spark_jobs.common import layout

if TYPE_CHECKING:
    import pyarrow
    from airflow.sdk import ObjectStoragePath

_AZURE_NAME = re.compile(r"^[a-z0-9]{3,24}$")

CHUNK = 8 * 1024 * 1024
LANDING_POLICIES = ("move", "keep")

AZURE_SCHEMES = ("abfs", "abfss")
S3_SCHEMES = ("s3", "s3a", "s3n")
AZURE_DFS_HOST = "dfs.core.windows.net"


def _split_url(url: str) -> tuple[str, str, str]:
    """``scheme://authority/path`` -> (scheme, authority, path without leading or trailing slashes)."""
    if "://" not in url:
        raise ValueError(f"not a URL with a scheme: {url!r}")
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    return scheme.lower(), authority, path.strip("/")


def spark_url(lake_url: str, account: str | None = None) -> str:
    """The lake URL as Spark (Hadoop's connectors) addresses it.

    ``file://...`` as is; ``s3://bucket/prefix`` -> ``s3a://bucket/prefix``;
    ``abfs://container/prefix`` (or ``abfss://``) + account -> ``abfss://container@account.dfs.core.windows.net/prefix``.
    """
    scheme, authority, path = _split_url(lake_url)
    if scheme == "file":
        return lake_url.rstrip("/")
    if scheme in S3_SCHEMES:
        return "/".join(p for p in (f"s3a://{authority}", path) if p)
    if scheme in AZURE_SCHEMES:
        if "@" in authority:
            raise ValueError(f"{lake_url!r} is already a Spark-style URL (container@account)")
        if not account:
            raise ValueError(f"the Spark URL of {lake_url!r} needs the storage account name")
        if not _AZURE_NAME.match(account):
            raise ValueError(f"{account!r} is not a storage account name (3-24 lower-case letters and digits)")
        return "/".join(p for p in (f"abfss://{authority}@{account}.{AZURE_DFS_HOST}", path) if p)
    raise NotImplementedError(f"Spark access to {scheme}:// lakes is not implemented")


def lake_url_from_spark(url: str) -> tuple[str, str | None]:
    """The inverse of :func:`spark_url`: (lake URL for ``ObjectStoragePath``, storage account or None).

    ``abfss://container@account.dfs.core.windows.net/prefix`` -> (``abfs://container/prefix``, ``account``)
    (``abfs://`` and the ``blob.core.windows.net`` host of ``wasb(s)://`` are understood too);
    ``s3a://bucket/prefix`` -> (``s3://bucket/prefix``, None); ``file://`` as is.
    """
    scheme, authority, path = _split_url(url)
    if scheme == "file":
        return url.rstrip("/"), None
    if scheme in S3_SCHEMES:
        return "/".join(p for p in (f"s3://{authority}", path) if p), None
    if scheme in AZURE_SCHEMES + ("wasb", "wasbs"):
        if "@" not in authority:
            if scheme in AZURE_SCHEMES:  # already a lake URL; the account comes from the connection
                return "/".join(p for p in (f"abfs://{authority}", path) if p), None
            raise ValueError(f"{url!r}: a wasb URL names container@account")
        container, host = authority.split("@", 1)
        account = host.split(".", 1)[0]
        if not container or not _AZURE_NAME.match(account):
            raise ValueError(f"{url!r} is not container@<account>.dfs.core.windows.net")
        return "/".join(p for p in (f"abfs://{container}", path) if p), account
    raise NotImplementedError(f"no lake URL for {scheme}:// URLs")


def storage_account(conn_id: str | None) -> str | None:
    """The Azure storage account of an Airflow connection (``wasb``, ``adls``, ``azure_data_lake``).

    Looked up, in order: extra ``account_name``; ``AccountName=`` of the extra ``connection_string``;
    the host (an account name or an account URL ``https://<account>.blob.core.windows.net``); the login.
    """
    if not conn_id:
        return None
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extras = conn.extra_dejson or {}

    def extra(name: str):
        return extras.get(name) or extras.get(f"extra__{conn.conn_type}__{name}")

    if extra("account_name"):
        return extra("account_name")
    if extra("connection_string"):
        parts = dict(p.split("=", 1) for p in extra("connection_string").split(";") if "=" in p)
        if parts.get("AccountName"):
            return parts["AccountName"]
    host = (conn.host or "").strip()
    if host:
        name = host.split("://", 1)[-1].split("/", 1)[0].split(".", 1)[0]
        if _AZURE_NAME.match(name):
            return name
    if conn.login and _AZURE_NAME.match(conn.login):
        return conn.login
    return None


class DateClaimed(RuntimeError):
    """Another run (of this Airflow or another one on the same lake) is writing the date."""


class RoutingError(RuntimeError):
    """A copy did not verify; the landed file is kept."""


@dataclass
class FileDigest:
    bytes: int
    sha256: str


@dataclass
class RoutingRecord:
    file: str
    kind: str | None
    ds: str
    run_id: str
    zone: str
    destination: str
    bytes: int
    sha256: str
    passed: bool
    rows: int | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gx_summary: dict[str, Any] | None = None
    report: str | None = None
    routed_at: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def digest(path: "ObjectStoragePath") -> FileDigest:
    """Size and SHA-256 of a file, streamed."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest())


def _copy_stream(src: "ObjectStoragePath", dst: "ObjectStoragePath") -> FileDigest:
    sha = hashlib.sha256()
    size = 0
    with src.open("rb") as reader, dst.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return FileDigest(size, sha.hexdigest())


PARTIAL_PREFIX = "."  # a file being copied into a zone of a file:// lake: hidden, never listed as a zone's file


class Lake:
    """A lake rooted at a URL (``file://``, ``s3://bucket/prefix``, ``abfs://container/prefix``)."""

    def __init__(self, url: str, conn_id: str | None = None):
        if "://" not in url:
            raise ValueError(f"the lake URL must have a scheme (file://, s3://, abfs://), got {url!r}")
        scheme, rest = url.split("://", 1)
        if "@" in rest.split("/", 1)[0]:
            # ObjectStoragePath reads scheme://NAME@... as connection id NAME.
            raise ValueError(
                f"{url!r} looks like a Spark-style URL (container@account); give the lake as "
                f"{scheme}://<container>/<prefix> and the account through the connection"
            )
        if scheme.lower() in ("wasb", "wasbs"):
            # Airflow's object storage knows abfs/abfss/adl for Azure, not wasb.
            raise ValueError(f"{url!r}: Airflow's object storage has no {scheme}:// scheme; use abfs://<container>/<prefix>")
        self.url = url.rstrip("/")
        self.scheme = scheme.lower()
        self.conn_id = conn_id

    @classmethod
    def from_settings(cls, settings) -> "Lake":
        return cls(settings.lake_url, settings.lake_conn_id)

    # --- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> "ObjectStoragePath":
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(layout.join(self.url, *parts), conn_id=self.conn_id)

    def zone(self, zone: str, ds: str) -> "ObjectStoragePath":
        return self.path(layout.zone_dir("", zone, ds))

    def table(self, zone: str, table: str, ds: str) -> "ObjectStoragePath":
        return self.path(layout.table_dir("", zone, table, ds))

    def record_path(self, ds: str, file_name: str) -> "ObjectStoragePath":
        return self.zone(layout.REPORTS, ds) / layout.ROUTING_RECORDS / f"{file_name}.json"

    def uri(self, path: "ObjectStoragePath") -> str:
        """A path as a plain URL in the lake's scheme (``s3://bucket/key``), for records and summaries.

        ``str()`` of an ``ObjectStoragePath`` with a connection embeds it (``s3://aws_default@bucket/key``),
        which for Azure would read as the Spark form ``container@account``.
        """
        return f"{self.scheme}://{path.path}"

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def spark_root(self, account: str | None = None) -> str:
        """The lake root as Spark addresses it (:func:`spark_url`). ``file://`` is used as is.

        For an Azure lake the storage account is ``account``, else the one of the lake's connection.
        """
        if self.scheme in AZURE_SCHEMES and not account:
            account = storage_account(self.conn_id)
            if not account:
                raise ValueError(f"cannot tell the storage account of {self.url} from connection {self.conn_id!r}")
        return spark_url(self.url, account)

    def local_root(self) -> str:
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local lake")
        return self.url[len("file://") :]

    # --- reading -----------------------------------------------------------------------------
    def files(self, zone: str, ds: str) -> list["ObjectStoragePath"]:
        """The files of ``zone/ds=D/`` (a copy still being written, hidden, is not one of them)."""
        folder = self.zone(zone, ds)
        if not folder.exists():
            return []
        return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(PARTIAL_PREFIX)),
                      key=lambda p: p.name)

    def landed_files(self, ds: str) -> list["ObjectStoragePath"]:
        """Every file in ``landing/ds=D/`` (any name: a file of unknown kind is routed to rejected)."""
        return self.files(layout.LANDING, ds)

    def records(self, ds: str) -> list[dict[str, Any]]:
        folder = self.zone(layout.REPORTS, ds) / layout.ROUTING_RECORDS
        if not folder.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".json")]

    def validated_dates(self, upto: str) -> list[str]:
        """Dates with a validated partition, up to and including ``upto``."""
        return self.partition_dates(self.path(layout.VALIDATED), upto)

    def table_dates(self, zone: str, table: str, upto: str) -> list[str]:
        """Dates with a whole partition (``layout.COMPLETE_MARKER``: Spark wrote all of it) of a bronze/silver/gold
        table, up to and including ``upto``; as ``spark_jobs.common.session.table_dates`` reads them."""
        root = self.path(zone, table)
        return [d for d in self.partition_dates(root, upto) if (root / layout.partition(d) / layout.COMPLETE_MARKER).exists()]

    def publication(self, ds: str) -> dict[str, Any] | None:
        """The publish gate's record of ``ds`` (``reports/ds=D/publication.json``), None when there is none."""
        path = self.zone(layout.REPORTS, ds) / layout.PUBLICATION
        return self.read_json(path) if path.exists() else None

    def served_date(self, table: str, upto: str) -> str | None:
        """The date whose ``gold/<table>`` is served as of ``upto``: the latest one the gate did not hold back."""
        dates = self.table_dates(layout.GOLD, table, upto)
        return layout.served_date(dates, lambda d: layout.is_published(self.publication(d)))

    def read_table(self, zone: str, table: str, ds: str, filters: list | None = None) -> "pyarrow.Table":
        """One date's partition of a Parquet table, read with pyarrow (``filters`` as pyarrow takes them; no Spark)."""
        import pyarrow.parquet as pq

        folder = self.table(zone, table, ds)
        return pq.read_table(folder.path, filesystem=folder.fs, filters=filters)

    def run_summaries_before(self, ds: str, limit: int) -> list[dict[str, Any]]:
        """The run summaries of the ``limit`` latest dates before ``ds`` that have one, oldest first.

        A date whose run failed before its summary was written is passed over.
        """
        summaries: list[dict[str, Any]] = []
        for date in reversed(self.partition_dates(self.path(layout.REPORTS), ds)):
            path = self.zone(layout.REPORTS, date) / layout.RUN_SUMMARY
            if date == ds or not path.exists():
                continue
            summaries.append(self.read_json(path))
            if len(summaries) == limit:
                break
        return summaries[::-1]

    @staticmethod
    def partition_dates(root: "ObjectStoragePath", upto: str) -> list[str]:
        if not root.exists():
            return []
        return sorted(p.name[3:] for p in root.iterdir() if p.name.startswith("ds=") and p.name[3:] <= upto)

    def read_json(self, path: "ObjectStoragePath") -> Any:
        return json.loads(path.read_text())

    def write_json(self, path: "ObjectStoragePath", obj: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    # --- one writer per date ----------------------------------------------------------------
    def claim_path(self, ds: str) -> "ObjectStoragePath":
        return self.path(layout.CLAIMS, f"ds={layout.check_ds(ds)}.json")

    def claim_date(self, ds: str, run_id: str, holder: str) -> dict[str, Any]:
        """Claim ``ds`` for ``run_id`` before writing any of its zones: ``claims/ds=D.json``, created only if
        absent (an exclusive create on every backend: ``O_EXCL``, S3's ``If-None-Match``, Azure's
        ``If-None-Match``), so of two runs of one date, in one Airflow or in two on the same lake, one writes.
        The same run claims again freely (a retry, a clear). Raises :class:`DateClaimed` naming the holder."""
        path = self.claim_path(ds)
        claim = {"ds": ds, "run_id": run_id, "holder": holder,
                 "claimed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as out:
                out.write((json.dumps(claim, indent=2, sort_keys=True) + "\n").encode())
            return claim
        except FileExistsError:
            held = self.read_json(path)
        if held.get("run_id") == run_id:
            return held
        raise DateClaimed(
            f"ds={ds} is being written by run {held.get('run_id')!r} of {held.get('holder')} (since "
            f"{held.get('claimed_at')}): this run ({run_id}) waits for it through its retries. Two runs of one date "
            f"must not write it at once; if that run is gone for good, delete {self.uri(path)}")

    def release_date(self, ds: str, run_id: str) -> bool:
        """Drop ``run_id``'s claim on ``ds`` (at the end of its run, or when it fails); another run's stays."""
        path = self.claim_path(ds)
        if not path.exists() or self.read_json(path).get("run_id") != run_id:
            return False
        path.unlink()
        return True

    # --- landing -----------------------------------------------------------------------------
    def land_bytes_from(self, local_file, ds: str, name: str | None = None) -> "ObjectStoragePath":
        """Copy a local file byte-for-byte into ``landing/ds=D/`` and verify it."""
        from airflow.sdk import ObjectStoragePath

        src = ObjectStoragePath(f"file://{local_file}")
        dst = self.zone(layout.LANDING, ds) / (name or src.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        self.copy_complete(src, dst, f"landing copy of {local_file} to {self.uri(dst)}")
        return dst

    def copy_complete(self, src: "ObjectStoragePath", dst: "ObjectStoragePath", what: str,
                      expected: "FileDigest | None" = None) -> FileDigest:
        """Copy ``src`` to ``dst`` so that ``dst`` is never a partial or unverified file: on a file:// lake the
        copy goes to a hidden file beside ``dst``, is verified, then renamed into place (a failed copy, a full
        disk included, leaves nothing); an object store shows an object only once its upload completes, and a
        copy that does not verify is deleted. ``expected``: the digest ``src`` had before (a file that changed
        while copied is refused). Raises :class:`RoutingError`; ``src`` is never touched."""
        import os

        target = dst.parent / f"{PARTIAL_PREFIX}{dst.name}.partial" if self.is_local else dst
        try:
            copied = _copy_stream(src, target)
            if expected is not None and copied != expected:
                raise RoutingError(f"{what}: the file changed while it was being copied; the original is kept")
            if digest(target) != copied:
                raise RoutingError(f"{what} did not verify; the original is kept")
            if target is not dst:
                os.replace(target.path, dst.path)
        except BaseException as err:
            if target.exists():
                target.unlink()
            if isinstance(err, OSError):
                raise RoutingError(f"{what} failed ({err.strerror or err}); nothing was written, the original is kept") from err
            raise
        return copied

    # --- routing -----------------------------------------------------------------------------
    def route(
        self,
        landed: "ObjectStoragePath",
        ds: str,
        *,
        passed: bool,
        run_id: str,
        kind: str | None,
        details: dict[str, Any] | None = None,
        policy: str = "move",
    ) -> RoutingRecord:
        """Copy, verify, record, then (policy ``move``) clear the landed file. Idempotent."""
        if policy not in LANDING_POLICIES:
            raise ValueError(f"landing policy must be one of {LANDING_POLICIES}, got {policy!r}")
        zone, other = (layout.VALIDATED, layout.REJECTED) if passed else (layout.REJECTED, layout.VALIDATED)
        source = digest(landed)
        destination = self.zone(zone, ds) / landed.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not (destination.exists() and digest(destination) == source):
            self.copy_complete(landed, destination, f"copy of {landed.name} to {self.uri(destination)}", expected=source)

        details = details or {}
        record = RoutingRecord(
            file=landed.name,
            kind=kind,
            ds=ds,
            run_id=run_id,
            zone=zone,
            destination=self.uri(destination),
            bytes=source.bytes,
            sha256=source.sha256,
            passed=passed,
            rows=details.get("rows"),
            failures=details.get("failures", []),
            notes=details.get("notes", []),
            gx_summary=details.get("gx_summary"),
            routed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            timings_s=details.get("timings_s", {}),
        )
        if not passed:
            report = self.zone(layout.REJECTED, ds) / layout.report_name(landed.name)
            record.report = self.uri(report)
            self.write_json(report, record.to_dict())
        self.write_json(self.record_path(ds, landed.name), record.to_dict())

        # A same-named file from an earlier landing that went the other way is superseded.
        stale = self.zone(other, ds) / landed.name
        if stale.exists():
            stale.unlink()
            if other == layout.REJECTED:
                stale_report = self.zone(layout.REJECTED, ds) / layout.report_name(landed.name)
                if stale_report.exists():
                    stale_report.unlink()
        if policy == "move":
            landed.unlink()
        return record
