"""The lake contract: layout, kinds, and routing that loses and duplicates nothing."""

from __future__ import annotations

import hashlib
import json

import pytest

from movielens.lake import Lake, RoutingError
from spark_jobs.common import layout
from tests import lakecheck

DS = "2026-11-20"


def land(lake: Lake, name: str, data: bytes, ds: str = DS):
    path = lake.zone(layout.LANDING, ds) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def every_file(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "name, kind",
    [
        ("ratings.csv", "ratings"),
        ("ratings_2026-11-20_part1.csv", "ratings"),
        ("Movies.CSV", "movies"),
        ("tags.csv", "tags"),
        ("links.csv", "links"),
        ("users.csv", None),
        ("ratings.csv.gz", None),
        ("README.txt", None),
    ],
)
def test_file_kind_from_name_prefix(name, kind):
    assert layout.file_kind(name) == kind


@pytest.mark.parametrize("bad", ["2026-13-01", "20261120", "2026-02-30", "", "2026-11-20/../x"])
def test_ds_must_be_a_real_date(bad):
    with pytest.raises(ValueError):
        layout.partition(bad)


def test_zone_and_table_paths():
    root = "file:///lake"
    assert layout.zone_dir(root, layout.LANDING, DS) == "file:///lake/landing/ds=2026-11-20"
    assert layout.table_dir(root, layout.SILVER, "ratings", DS) == "file:///lake/silver/ratings/ds=2026-11-20"
    assert layout.report_name("ratings_part1.csv") == "ratings_part1.report.json"
    with pytest.raises(ValueError):
        layout.zone_dir(root, layout.BRONZE, DS)
    with pytest.raises(ValueError):
        layout.table_dir(root, layout.LANDING, "ratings", DS)


def test_lake_paths_are_object_storage_paths(lake_url):
    lake = Lake(lake_url)
    assert str(lake.zone(layout.VALIDATED, DS)).endswith("/lake/validated/ds=2026-11-20")
    assert lake.spark_root() == lake_url


def test_spark_style_abfss_url_is_refused():
    with pytest.raises(ValueError, match="container@account"):
        Lake("abfss://lake@account.dfs.core.windows.net/prefix")


def test_route_validated_moves_bytes_unchanged_and_records(lake_url, tmp_path):
    lake = Lake(lake_url)
    data = b"movieId,title,genres\r\n1,\"Toy Story, The (1995)\",Comedy\r\n"
    landed = land(lake, "movies.csv", data)
    record = lake.route(landed, DS, passed=True, run_id="r1", kind="movies", details={"rows": 1})

    dest = lake.zone(layout.VALIDATED, DS) / "movies.csv"
    assert dest.read_bytes() == data
    assert record.sha256 == hashlib.sha256(data).hexdigest() and record.bytes == len(data)
    assert not landed.exists(), "move policy clears landing"
    saved = json.loads(lake.record_path(DS, "movies.csv").read_text())
    assert saved["zone"] == "validated" and saved["run_id"] == "r1" and saved["rows"] == 1


def test_route_rejected_writes_report_beside_file(lake_url):
    lake = Lake(lake_url)
    landed = land(lake, "ratings_bad.csv", b"garbage")
    failures = [{"check": "header", "message": "wrong columns", "examples": [{"line": 1, "value": "garbage"}]}]
    lake.route(landed, DS, passed=False, run_id="r1", kind="ratings", details={"failures": failures})
    rejected = lake.zone(layout.REJECTED, DS)
    assert (rejected / "ratings_bad.csv").read_bytes() == b"garbage"
    report = json.loads((rejected / "ratings_bad.report.json").read_text())
    assert report["failures"] == failures and report["file"] == "ratings_bad.csv" and report["ds"] == DS
    assert not (lake.zone(layout.VALIDATED, DS) / "ratings_bad.csv").exists()


def test_keep_policy_leaves_landing(lake_url):
    lake = Lake(lake_url)
    landed = land(lake, "links.csv", b"movieId,imdbId,tmdbId\n1,0114709,862\n")
    lake.route(landed, DS, passed=True, run_id="r1", kind="links", policy="keep")
    assert landed.exists() and (lake.zone(layout.VALIDATED, DS) / "links.csv").exists()


def test_rerun_after_crash_between_copy_and_delete_duplicates_nothing(lake_url, tmp_path):
    """A kill after the copy (destination written, landing not cleared) is finished by a rerun."""
    lake = Lake(lake_url)
    data = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
    landed = land(lake, "ratings.csv", data)
    dest = lake.zone(layout.VALIDATED, DS) / "ratings.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)  # the state a crash after step 1 leaves
    lake.route(landed, DS, passed=True, run_id="r2", kind="ratings")
    root = tmp_path / "lake"
    assert every_file(root) == ["reports/ds=2026-11-20/files/ratings.csv.json", "validated/ds=2026-11-20/ratings.csv"]
    assert dest.read_bytes() == data


def test_partial_copy_is_replaced_on_rerun(lake_url):
    lake = Lake(lake_url)
    data = b"userId,movieId,rating,timestamp\n" + b"1,2,3.5,964982703\n" * 1000
    landed = land(lake, "ratings.csv", data)
    dest = lake.zone(layout.VALIDATED, DS) / "ratings.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[:100])  # a half-written copy from a killed run
    lake.route(landed, DS, passed=True, run_id="r2", kind="ratings")
    assert dest.read_bytes() == data


def test_relanded_file_with_other_verdict_supersedes_old_copy(lake_url, tmp_path):
    lake = Lake(lake_url)
    lake.route(land(lake, "tags.csv", b"bad"), DS, passed=False, run_id="r1", kind="tags")
    good = b"userId,movieId,tag,timestamp\n1,1,funny,964982703\n"
    lake.route(land(lake, "tags.csv", good), DS, passed=True, run_id="r2", kind="tags")
    files = every_file(tmp_path / "lake")
    assert files == ["reports/ds=2026-11-20/files/tags.csv.json", "validated/ds=2026-11-20/tags.csv"]


def test_copy_that_does_not_verify_keeps_landing(lake_url, monkeypatch):
    lake = Lake(lake_url)
    landed = land(lake, "movies.csv", b"movieId,title,genres\n1,A (1999),Drama\n")
    import movielens.lake as lake_module

    real_copy = lake_module._copy_stream

    def corrupting_copy(src, dst):
        digest = real_copy(src, dst)
        dst.write_bytes(b"corrupted")  # storage returned other bytes than were sent
        return digest

    monkeypatch.setattr(lake_module, "_copy_stream", corrupting_copy)
    with pytest.raises(RoutingError, match="did not verify"):
        lake.route(landed, DS, passed=True, run_id="r1", kind="movies")
    assert landed.exists(), "landing is kept when the copy does not verify"
    assert not lake.record_path(DS, "movies.csv").exists()


def test_a_full_disk_leaves_no_partial_file_in_any_zone(lake_url, tmp_path, monkeypatch):
    """The copy stops with ENOSPC half-way (the disk filled up): neither validated/ nor landing gets a partial
    file, the landed original stays whole, and a later copy (space freed) routes it."""
    import errno

    import movielens.lake as lake_module

    lake = Lake(lake_url)
    content = b"userId,movieId,rating,timestamp\n" + b"1,1,4.0,964982703\n" * 50_000
    landed = land(lake, "ratings.csv", content)
    real_copy = lake_module._copy_stream

    def full_disk_copy(src, dst):
        with src.open("rb") as reader, dst.open("wb") as writer:
            writer.write(reader.read(len(content) // 2))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake_module, "_copy_stream", full_disk_copy)
    with pytest.raises(RoutingError, match="No space left on device.*nothing was written, the original is kept"):
        lake.route(landed, DS, passed=True, run_id="r1", kind="ratings")
    assert every_file(tmp_path / "lake") == ["landing/ds=2026-11-20/ratings.csv"]
    assert landed.read_bytes() == content and lake.files("validated", DS) == []
    source = tmp_path / "ratings.csv"
    source.write_bytes(content)
    with pytest.raises(RoutingError, match="landing copy of .* failed"):
        lake.land_bytes_from(source, "2026-11-21")
    assert lake.files("landing", "2026-11-21") == []

    monkeypatch.setattr(lake_module, "_copy_stream", real_copy)
    record = lake.route(landed, DS, passed=True, run_id="r2", kind="ratings")
    assert record.bytes == len(content) and (tmp_path / "lake" / "validated" / f"ds={DS}" / "ratings.csv").read_bytes() == content


def test_spark_and_lake_urls_translate_both_ways():
    from movielens.lake import lake_url_from_spark, spark_url

    assert spark_url("file:///data/lake") == "file:///data/lake"
    assert spark_url("s3://bucket/prefix/") == "s3a://bucket/prefix"
    assert spark_url("abfs://lake/prefix", "acct01") == "abfss://lake@acct01.dfs.core.windows.net/prefix"
    assert spark_url("abfss://lake", "acct01") == "abfss://lake@acct01.dfs.core.windows.net"
    assert lake_url_from_spark("abfss://lake@acct01.dfs.core.windows.net/prefix") == ("abfs://lake/prefix", "acct01")
    assert lake_url_from_spark("wasbs://lake@acct01.blob.core.windows.net/p") == ("abfs://lake/p", "acct01")
    assert lake_url_from_spark("s3a://bucket/prefix") == ("s3://bucket/prefix", None)
    for lake_url, account in [("s3://b/p", None), ("abfs://lake/prefix", "acct01"), ("file:///x", None)]:
        assert lake_url_from_spark(spark_url(lake_url, account)) == (lake_url, account)
    with pytest.raises(ValueError, match="storage account"):
        spark_url("abfs://lake/prefix")
    with pytest.raises(ValueError, match="no wasb:// scheme"):
        Lake("wasb://lake/prefix")


def test_records_name_objects_without_the_connection_id(lake_url):
    lake = Lake(lake_url)
    path = lake.zone(layout.VALIDATED, DS) / "movies.csv"
    assert lake.uri(path) == f"{lake_url}/validated/ds={DS}/movies.csv"


def test_lake_connection_defaults_by_scheme(monkeypatch):
    from movielens import config

    monkeypatch.delenv("MOVIELENS_LAKE_CONN_ID", raising=False)
    for url, conn in [("s3://b/p", "aws_default"), ("abfs://c/p", "wasb_default"), ("file:///x", None)]:
        monkeypatch.setenv("MOVIELENS_LAKE_URL", url)
        assert config.load().lake_conn_id == conn
    monkeypatch.setenv("MOVIELENS_LAKE_CONN_ID", "my_lake")
    assert config.load().lake_conn_id == "my_lake"


def test_one_run_writes_a_date_at_a_time(lake_url):
    lakecheck.one_writer_per_date(Lake(lake_url), DS)


def test_a_run_that_does_not_hold_its_date_lands_and_routes_nothing(lake_url, monkeypatch, tmp_path):
    """Run B of a date that run A is writing (another Airflow on the same lake): landing and routing refuse
    before they write, and the files stay in landing for the run that holds the date."""
    from movielens import pipeline
    from movielens.lake import DateClaimed

    source = tmp_path / "source"
    source.mkdir()
    (source / "movies.csv").write_bytes(b"movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    monkeypatch.setenv("MOVIELENS_DIR", str(source))
    lake = Lake(lake_url)
    pipeline.claim_date(DS, "manual__A")
    with pytest.raises(DateClaimed, match="being written by run 'manual__A' of movielens_daily on "):
        pipeline.land(DS, "manual__B", "folder")
    assert not lake.zone(layout.LANDING, DS).exists()
    assert pipeline.land(DS, "manual__A", "folder")["files"] == ["movies.csv"]
    with pytest.raises(DateClaimed):
        pipeline.process_landed_file(DS, "manual__B", "movies.csv")
    assert [p.name for p in lake.landed_files(DS)] == ["movies.csv"] and not lake.records(DS)
    assert pipeline.process_landed_file(DS, "manual__A", "movies.csv")["zone"] == "validated"
    assert pipeline.release_date(DS, "manual__A") and pipeline.claim_date(DS, "manual__B")["run_id"] == "manual__B"
