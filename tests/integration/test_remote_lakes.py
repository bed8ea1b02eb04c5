"""The lake on S3 (moto server) and on Azure Blob Storage (Azurite), through ObjectStoragePath.

Unit-level: landing copy, routing (copy, verify, record, clear), reruns without duplicates, validation
of a remote file, the Spark URL of each lake, and the local-disk staging of a Spark job's inputs and
outputs. End to end (``e2e``): ``movielens_daily`` with ``airflow dags test`` on each remote lake, local
Spark staging through disk, and a rerun of the date that leaves the same objects. The end-to-end runs
also prove that secrets stay secret: the lake's connection holds a secret (S3: the secret key; Azure:
the account key) and the SMTP server takes mail only with a password; on S3 both connections come from
AWS Secrets Manager (moto), on Azure from ``AIRFLOW_CONN_*``; after both runs, neither secret is in
Airflow's home (logs, metadata DB), the task logs, any lake object or any email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass

import pytest

from movielens.lake import Lake, RoutingError, lake_url_from_spark, spark_url, storage_account
from spark_jobs.common import layout
from tests import e2e, lakecheck, leaks

DS = "2026-11-20"
PREFIX = "platform/lake"
ALS_RANK_PARAM = 8
MOVIES = b'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"Heat, The (1995)",Action\n'
RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964982704\n2,1,5.0,964982705\n"


@dataclass
class RemoteLake:
    """A fresh bucket or container on a local server, the lake in it, and a way to list its objects."""

    backend: str
    lake: Lake
    conn_id: str
    conn_json: str
    server: object
    store: str  # bucket or container
    secret: str  # what the connection must keep to itself: the S3 secret key, the Azure account key

    def keys(self) -> list[str]:
        """Every object under the lake's prefix, relative to it."""
        if self.backend == "s3":
            names = self.server.keys(self.store, PREFIX + "/")
        else:
            names = self.server.blobs(self.store, PREFIX + "/")
        return sorted(n[len(PREFIX) + 1:] for n in names)


def make_remote_lake(backend: str, server, monkeypatch) -> RemoteLake:
    conn_id = f"movielens_lake_{backend}"
    if backend == "s3":
        store = server.create_bucket()
        url = f"s3://{store}/{PREFIX}"
        # A secret key of its own, with the characters of a real one that URL-quoting changes (moto takes any).
        secret = f"lake+secret/{uuid.uuid4().hex}"
        conn_json = json.dumps({**server.connection(), "password": secret})
    else:
        store = server.create_container()
        url = f"abfs://{store}/{PREFIX}"
        secret = server.key  # Azurite's account key, inside the connection string
        conn_json = server.connection_json()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json)
    monkeypatch.setenv("MOVIELENS_LAKE_URL", url)
    monkeypatch.setenv("MOVIELENS_LAKE_CONN_ID", conn_id)
    return RemoteLake(backend, Lake(url, conn_id), conn_id, conn_json, server, store, secret)


@pytest.fixture(params=["s3", "abfs"])
def remote(request, monkeypatch) -> RemoteLake:
    server = request.getfixturevalue("moto_server" if request.param == "s3" else "azurite_server")
    return make_remote_lake(request.param, server, monkeypatch)


def land(remote: RemoteLake, name: str, data: bytes, tmp_path, ds: str = DS):
    local = tmp_path / "source" / name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return remote.lake.land_bytes_from(local, ds)


# --- URLs ---------------------------------------------------------------------------------------------
def test_spark_urls_of_the_lakes(azurite_server, monkeypatch):
    assert spark_url("s3://bucket/prefix") == "s3a://bucket/prefix"
    assert spark_url("abfs://lake/prefix/x", "acct01") == "abfss://lake@acct01.dfs.core.windows.net/prefix/x"
    assert lake_url_from_spark("abfss://lake@acct01.dfs.core.windows.net/prefix/x") == ("abfs://lake/prefix/x", "acct01")
    assert lake_url_from_spark("s3a://bucket/prefix") == ("s3://bucket/prefix", None)
    # Through the connection, as the DAG's tasks see it: Azurite's development account.
    remote = make_remote_lake("abfs", azurite_server, monkeypatch)
    assert storage_account(remote.conn_id) == azurite_server.account
    root = remote.lake.spark_root()
    assert root == f"abfss://{remote.store}@{azurite_server.account}.dfs.core.windows.net/{PREFIX}"
    assert lake_url_from_spark(root) == (remote.lake.url, azurite_server.account)
    with pytest.raises(ValueError, match="container@account"):
        Lake(root, remote.conn_id)
    with pytest.raises(ValueError, match="no wasbs:// scheme"):
        Lake(f"wasbs://{remote.store}/{PREFIX}", remote.conn_id)


# --- landing and routing ------------------------------------------------------------------------------
def test_landing_copy_and_routing_both_zones(remote, tmp_path):
    lake = remote.lake
    movies = land(remote, "movies.csv", MOVIES, tmp_path)
    bad = land(remote, "ratings_bad.csv", b"garbage\n", tmp_path)
    assert [p.name for p in lake.landed_files(DS)] == ["movies.csv", "ratings_bad.csv"]
    assert remote.keys() == [f"landing/ds={DS}/movies.csv", f"landing/ds={DS}/ratings_bad.csv"]

    record = lake.route(movies, DS, passed=True, run_id="r1", kind="movies", details={"rows": 2})
    failures = [{"check": "columns", "message": "wrong columns", "examples": [{"line": 1, "value": "garbage"}]}]
    lake.route(bad, DS, passed=False, run_id="r1", kind="ratings", details={"failures": failures})

    assert remote.keys() == [
        f"rejected/ds={DS}/ratings_bad.csv",
        f"rejected/ds={DS}/ratings_bad.report.json",
        f"reports/ds={DS}/files/movies.csv.json",
        f"reports/ds={DS}/files/ratings_bad.csv.json",
        f"validated/ds={DS}/movies.csv",
    ]
    assert (lake.zone(layout.VALIDATED, DS) / "movies.csv").read_bytes() == MOVIES
    assert record.sha256 == hashlib.sha256(MOVIES).hexdigest() and record.bytes == len(MOVIES)
    # Records name the object by its plain URL, never with the connection id ObjectStoragePath embeds.
    assert record.destination == f"{lake.url}/validated/ds={DS}/movies.csv"
    records = {r["file"]: r for r in lake.records(DS)}
    assert records["ratings_bad.csv"]["report"] == f"{lake.url}/rejected/ds={DS}/ratings_bad.report.json"
    assert records["ratings_bad.csv"]["failures"] == failures and records["movies.csv"]["rows"] == 2
    assert lake.validated_dates("2026-12-31") == [DS] and lake.validated_dates("2026-11-19") == []


def test_rerun_after_crash_and_relanding_duplicate_nothing(remote, tmp_path):
    lake = remote.lake
    # A crash after the copy (destination written, landing kept) is finished by a rerun.
    landed = land(remote, "ratings.csv", RATINGS, tmp_path)
    dest = lake.zone(layout.VALIDATED, DS) / "ratings.csv"
    dest.write_bytes(RATINGS)
    lake.route(landed, DS, passed=True, run_id="r2", kind="ratings")
    once = remote.keys()
    assert once == [f"reports/ds={DS}/files/ratings.csv.json", f"validated/ds={DS}/ratings.csv"]
    # A half-written copy is replaced; routing again the same landing changes nothing else.
    dest.write_bytes(RATINGS[:20])
    lake.route(land(remote, "ratings.csv", RATINGS, tmp_path), DS, passed=True, run_id="r3", kind="ratings")
    assert remote.keys() == once and dest.read_bytes() == RATINGS
    # The same name landed again with another verdict supersedes the earlier copy.
    lake.route(land(remote, "ratings.csv", b"bad", tmp_path), DS, passed=False, run_id="r4", kind="ratings")
    assert remote.keys() == [
        f"rejected/ds={DS}/ratings.csv",
        f"rejected/ds={DS}/ratings.report.json",
        f"reports/ds={DS}/files/ratings.csv.json",
    ]


def test_one_run_writes_a_date_at_a_time(remote):
    """Claims are exclusive creates on S3 (If-None-Match) and Azure as on file://."""
    lakecheck.one_writer_per_date(remote.lake, DS)


def test_copy_that_does_not_verify_keeps_landing(remote, tmp_path, monkeypatch):
    import movielens.lake as lake_module

    landed = land(remote, "movies.csv", MOVIES, tmp_path)
    real_copy = lake_module._copy_stream

    def corrupting_copy(src, dst):
        digest = real_copy(src, dst)
        dst.write_bytes(b"corrupted")
        return digest

    monkeypatch.setattr(lake_module, "_copy_stream", corrupting_copy)
    with pytest.raises(RoutingError, match="did not verify"):
        remote.lake.route(landed, DS, passed=True, run_id="r1", kind="movies")
    assert landed.exists() and not remote.lake.record_path(DS, "movies.csv").exists()


def test_storage_unreachable_mid_routing_loses_and_duplicates_nothing(azurite_server, tmp_path, monkeypatch):
    """Every connection to Azure storage drops while routing writes a file into validated/, and new ones are
    refused for 2 s (a network cut in front of Azurite): the routing either rides it out (the SDK's retries) or
    fails saying so; run again, as the task's retry does, every landed file is in its zone once with its bytes,
    with one record, and landing is empty. (Azurite itself is not killed: it keeps its metadata in memory and
    writes it to disk every few seconds, so a killed Azurite loses writes it acknowledged, as no real storage
    service does; measured here under load.)"""
    import threading

    import movielens.lake as lake_module
    from movielens import pipeline
    from tests.servers import CuttableProxy

    proxy = CuttableProxy(azurite_server.port)
    ratings = RATINGS + b"".join(b"%d,%d,4.0,964982703\n" % (3 + i // 2, 1 + i % 2) for i in range(60_000))
    files = {"movies.csv": MOVIES, "ratings.csv": ratings,
             "ratings_broken.csv": b"userId,movieId,rating,timestamp\n1,1,7.5,964982703\n"}
    remote = make_remote_lake("abfs", azurite_server, monkeypatch)
    through_proxy = remote.conn_json.replace(f"127.0.0.1:{azurite_server.port}/", f"127.0.0.1:{proxy.port}/")
    assert through_proxy != remote.conn_json
    monkeypatch.setenv(f"AIRFLOW_CONN_{remote.conn_id.upper()}", through_proxy)
    try:
        for name, data in files.items():
            land(remote, name, data, tmp_path)
        real_copy, cuts, restored = lake_module._copy_stream, [], threading.Event()

        class CutsTheNetworkAfterReading:
            def __init__(self, src):
                self.src = src

            def open(self, mode):
                reader = self.src.open(mode)
                read = reader.read

                def read_then_cut(size=-1):
                    chunk = read(size)
                    if chunk and not cuts:
                        cuts.append(self.src.name)
                        proxy.cut()
                        threading.Timer(2.0, lambda: (proxy.restore(), restored.set())).start()
                    return chunk

                reader.read = read_then_cut
                return reader

        def copy_with_a_cut(src, dst):
            if src.name == "ratings.csv" and not cuts:
                return real_copy(CutsTheNetworkAfterReading(src), dst)
            return real_copy(src, dst)

        monkeypatch.setattr(lake_module, "_copy_stream", copy_with_a_cut)
        outcomes = {}
        for name in sorted(files):
            try:
                outcomes[name] = pipeline.process_landed_file(DS, "manual__r1", name)["zone"]
            except Exception as err:  # noqa: BLE001 - what the task log would show
                outcomes[name] = f"failed: {type(err).__name__}: {err}"
        assert cuts == ["ratings.csv"] and restored.wait(30)
        monkeypatch.setattr(lake_module, "_copy_stream", real_copy)
        for name in sorted(files):  # the task's retry
            outcomes[name] = (outcomes[name], pipeline.process_landed_file(DS, "manual__r1", name)["zone"])

        assert {n: o[1] for n, o in outcomes.items()} == {
            "movies.csv": "validated", "ratings.csv": "validated", "ratings_broken.csv": "rejected"}, outcomes
        first = outcomes["ratings.csv"][0]
        assert first == "validated" or first.startswith("failed: "), outcomes
        assert remote.keys() == sorted([
            f"claims/ds={DS}.json",  # (the run's, until its summary is written)
            f"reports/ds={DS}/files/movies.csv.json", f"reports/ds={DS}/files/ratings.csv.json",
            f"reports/ds={DS}/files/ratings_broken.csv.json", f"rejected/ds={DS}/ratings_broken.csv",
            f"rejected/ds={DS}/ratings_broken.report.json", f"validated/ds={DS}/movies.csv", f"validated/ds={DS}/ratings.csv",
        ])
        for name, zone in (("movies.csv", layout.VALIDATED), ("ratings.csv", layout.VALIDATED),
                           ("ratings_broken.csv", layout.REJECTED)):
            assert (remote.lake.zone(zone, DS) / name).read_bytes() == files[name], name
        assert [r["sha256"] for r in remote.lake.records(DS) if r["file"] == "ratings.csv"] == [hashlib.sha256(ratings).hexdigest()]
        print("first attempt:", outcomes)
    finally:
        proxy.close()


def test_validate_and_route_remote_files_as_the_dag_does(remote, tmp_path):
    """pipeline.process_landed_file on the remote lake: GX validation reads the object, then routes it."""
    from movielens import pipeline

    land(remote, "movies.csv", MOVIES, tmp_path)
    land(remote, "ratings.csv", RATINGS, tmp_path)
    land(remote, "ratings_broken.csv", b"userId,movieId,rating,timestamp\n1,1,7.5,964982703\n", tmp_path)
    landed = pipeline.find_landed_files(DS)
    assert landed == {"movies": ["movies.csv"], "others": ["ratings.csv", "ratings_broken.csv"]}
    results = {name: pipeline.process_landed_file(DS, "manual__r1", name) for name in landed["movies"] + landed["others"]}
    assert {n: r["zone"] for n, r in results.items()} == {
        "movies.csv": "validated", "ratings.csv": "validated", "ratings_broken.csv": "rejected",
    }
    assert "rating_range" in [f["check"] for f in results["ratings_broken.csv"]["failures"]]
    assert not remote.lake.landed_files(DS), "landing is cleared"
    assert pipeline.check_training_data(DS) == {"validated_ratings_dates": [DS]}
    # A rerun of the routing task after the file left landing reports the same record.
    again = pipeline.process_landed_file(DS, "manual__r1", "ratings.csv")
    assert again["sha256"] == results["ratings.csv"]["sha256"]
    docs = pipeline.build_data_docs(DS)
    assert docs["data_docs"] == f"{remote.lake.url}/reports/ds={DS}/data_docs/index.html" and docs["files"] == 3
    assert f"reports/ds={DS}/data_docs/index.html" in remote.keys()


# --- staging for local Spark ----------------------------------------------------------------------------
def test_tuning_decision_reads_earlier_runs_on_the_remote_lake(remote, monkeypatch):
    """Tuning on a schedule (movielens.tuning) finds the latest tuning run of the window in the remote lake."""
    from movielens import config, tuning
    from tests.tuned import RATING, day, write_params

    for name in ("MOVIELENS_TUNE", "MOVIELENS_TUNE_EVERY_DAYS", "MOVIELENS_SEED", "MOVIELENS_TOP_N_MAX_ITEMS"):
        monkeypatch.delenv(name, raising=False)
    assert tuning.decide(remote.lake, config.load().spec, DS).action == tuning.TUNE
    write_params(remote.lake, day(-3, DS), rating={**RATING, "rank": 12})
    write_params(remote.lake, day(-1, DS), action=tuning.REUSE, source_ds=day(-3, DS))
    write_params(remote.lake, day(1, DS))  # a later date never counts
    decision = tuning.decide(remote.lake, config.load().spec, DS)
    assert decision.action == tuning.REUSE and decision.source_ds == day(-3, DS)
    assert decision.params["als_rank"] == 12
    assert f"ds={day(-3, DS)}" in decision.reason and remote.store in decision.reason


def put(remote: RemoteLake, rel: str, data: bytes) -> None:
    path = remote.lake.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_the_api_answers_from_the_remote_lake(remote, monkeypatch):
    """The API app on the lake's served partitions, run summaries, reports and Data Docs (as on file://)."""
    from fastapi.testclient import TestClient

    from movielens.api import app as api_app
    from tests import servinglake

    monkeypatch.delenv("MOVIELENS_SERVING_CONN_ID", raising=False)
    servinglake.write(lambda rel, data: put(remote, rel, data))
    app = api_app.create_app()
    app.dependency_overrides[api_app.reader] = lambda: "tester"  # Airflow's login: tested on the real server
    servinglake.check_answers(TestClient(app, raise_server_exceptions=False), "lake")


def test_staging_moves_only_the_partitions_a_job_needs_and_replaces_outputs(remote, tmp_path):
    from movielens.compute.staging import LocalStaging

    before, after = "2026-11-19", "2026-11-21"
    put(remote, f"validated/ds={DS}/movies.csv", MOVIES)
    put(remote, f"validated/ds={before}/ratings.csv", RATINGS)  # bronze.py reads only ds=D
    put(remote, f"rejected/ds={DS}/ratings_bad.csv", b"bad")
    for ds in (before, DS, after):
        put(remote, f"bronze/movies/ds={ds}/part-0.parquet", b"m" + ds.encode())
        put(remote, f"bronze/movies/ds={ds}/_SUCCESS", b"")
        put(remote, f"bronze/ratings/ds={ds}/part-0.parquet", b"r" + ds.encode())
        put(remote, f"bronze/ratings/ds={ds}/_SUCCESS", b"")
    put(remote, f"bronze/tags/ds={before}/part-0.parquet", b"t")
    # A partition whose job was stopped mid-write (no _SUCCESS): never staged as history.
    put(remote, "bronze/ratings/ds=2026-11-18/part-0.parquet", b"partial")
    # The checks' inputs: the latest silver before D, and the served date's lists, ratings and records
    # (its model artifacts are not needed).
    earlier = {f"silver/ratings/ds={before}/part-0.parquet": b"s", f"silver/movies/ds={before}/part-0.parquet": b"sm",
               f"gold/recommendations/ds={before}/part-0.parquet": b"served",
               **{f"{table}/ds={before}/_SUCCESS": b"" for table in ("silver/ratings", "silver/movies", "gold/recommendations")},
               f"reports/ds={before}/publication.json": b'{"published": true}', f"models/ds={before}/params.json": b"{}"}
    for rel, data in earlier.items():
        put(remote, rel, data)
    put(remote, f"models/ds={before}/als_explicit/metadata/part-0", b"served model")
    # Outputs of an earlier run of ds=D: every one must be replaced or removed.
    put(remote, f"bronze/tags/ds={DS}/part-old.parquet", b"old tags")
    put(remote, f"gold/recommendations/ds={DS}/part-old.parquet", b"old recs")
    put(remote, f"models/ds={DS}/als_explicit/metadata/part-old", b"old model")

    with LocalStaging(remote.lake, "daily.py", DS, tmp_path / "staging") as stage:
        stats = stage.download()
        root = stage.root
        got = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        assert got == sorted([
            f"bronze/movies/ds={before}/_SUCCESS",
            f"bronze/movies/ds={before}/part-0.parquet",
            f"bronze/ratings/ds={before}/_SUCCESS",
            f"bronze/ratings/ds={before}/part-0.parquet",
            f"validated/ds={DS}/movies.csv",
            *earlier,
        ])
        assert (root / f"validated/ds={DS}/movies.csv").read_bytes() == MOVIES
        assert all((root / rel).read_bytes() == data for rel, data in earlier.items())
        assert stats["files"] == 13
        assert stats["bytes"] == len(MOVIES) + 2 * len(b"m" + before.encode()) + sum(map(len, earlier.values()))

        # What a Spark run leaves in the folder (checksum files included; no tags validated today).
        written = {
            f"bronze/movies/ds={DS}/part-new.parquet": b"new movies",
            f"bronze/movies/ds={DS}/.part-new.parquet.crc": b"crc",
            f"bronze/movies/ds={DS}/_SUCCESS": b"",
            f"silver/ratings/ds={DS}/part-new.parquet": b"new silver",
            f"gold/recommendations/ds={DS}/part-new.parquet": b"new recs",
            f"gold/brand_new_table/ds={DS}/part-new.parquet": b"undeclared",
            f"models/ds={DS}/als_explicit/metadata/part-00000": b"new model",
            f"models/ds={DS}/params.json": b"{}",
        }
        for rel, data in written.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        report = {"outputs": {"recommendations": f"gold/recommendations/ds={DS}"}}
        (root / f"reports/ds={DS}/spark_job.json").parent.mkdir(parents=True)
        (root / f"reports/ds={DS}/spark_job.json").write_text(json.dumps(report))
        out = stage.upload()
    assert not root.exists(), "the staging folder is removed"
    # Removed first: bronze movies (2) and ratings (2) of ds=D, the old tags, recommendations and model.
    assert out["removed"] == 7 and out["files"] == 8

    keys = set(remote.keys())
    for rel, data in written.items():
        if "/." in rel:
            assert rel not in keys, "Spark checksum files are not uploaded"
        else:
            assert (remote.lake.path(rel)).read_bytes() == data, rel
    assert not any(k.startswith(f"bronze/tags/ds={DS}/") for k in keys), "a kind with no data today is removed"
    assert not any(k.startswith(f"bronze/ratings/ds={DS}/") for k in keys)
    assert f"bronze/tags/ds={before}/part-0.parquet" in keys and f"bronze/ratings/ds={after}/part-0.parquet" in keys
    assert not any("part-old" in k for k in keys), "old outputs of ds=D are replaced"
    saved = json.loads(remote.lake.path(f"reports/ds={DS}/spark_job.json").read_text())
    assert saved["outputs"] == report["outputs"], "relative to the lake root, as the job wrote them"
    assert saved["staging"]["in"]["files"] == 13


# --- end to end -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from movielens.ingest import synthetic

    folder = tmp_path_factory.mktemp("source")
    synthetic.generate_size(folder, "tiny", seed=7, end=dt.date.fromisoformat(DS))
    (folder / "ratings_broken.csv").write_text("userId,movieId,rating,timestamp\n1,1,7.5,964982703\n")
    return folder


@pytest.fixture
def mailbox_with_password(tmp_path):
    """The SMTP server, taking mail only from a client that logs in with this test's password."""
    from devenv.mailbox import Mailbox

    # Characters a connection URI must quote.
    with Mailbox(tmp_path / "mail", credentials=("movielens", f"smtp:pass@{uuid.uuid4().hex}%")) as box:
        yield box


def run_daily(remote: RemoteLake, tmp_path, mailbox, source, log_name: str) -> str:
    from devenv import local_airflow

    connections = {remote.conn_id: json.loads(remote.conn_json), "smtp_default": mailbox.connection()}
    if remote.backend == "s3":
        # From a secrets backend: AWS Secrets Manager (the moto server), none from the environment.
        connection_env = remote.server.secrets_backend_env(connections)
    else:
        connection_env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()}
    env = local_airflow.airflow_env(
        home=tmp_path / "airflow",
        lake_url=remote.lake.url,
        extra={
            **connection_env,
            "MOVIELENS_LAKE_CONN_ID": remote.conn_id,
            "MOVIELENS_DIR": str(source),
            "MOVIELENS_EMAIL_TO": "team@example.test",
            "MOVIELENS_DEMO_USERS": "1",
            "MOVIELENS_CACHE_DIR": str(tmp_path / "cache"),
            "MOVIELENS_STAGING_DIR": str(tmp_path / "staging"),
            "MOVIELENS_SPARK_DRIVER_MEMORY": "2g",
            # These runs test the lake plumbing; tuning is covered by the file:// run and tests/spark.
            "MOVIELENS_TUNE": "false",
        },
    )
    if remote.backend == "s3":
        for conn_id in connections:  # the unit-level fixture put the lake's in this process's environment
            env.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
    if not (tmp_path / "airflow" / "airflow.db").exists():
        e2e.migrate(env)
    # One model setting from the trigger form: it must reach the Spark job (the environment says 20).
    conf = {"ingest": "folder", "als_rank": ALS_RANK_PARAM}
    return local_airflow.dags_test("movielens_daily", DS, env, conf=conf, log_file=tmp_path / log_name)


@pytest.mark.e2e
def test_daily_dag_end_to_end_on_remote_lake_and_rerun(remote, tmp_path, mailbox_with_password, source):
    mailbox = mailbox_with_password
    state = run_daily(remote, tmp_path, mailbox, source, "dags_test.log")
    assert state == "success", (tmp_path / "dags_test.log").read_text()[-6000:]
    lake, url = remote.lake, remote.lake.url
    keys = remote.keys()

    validated = sorted(k.rsplit("/", 1)[1] for k in keys if k.startswith(f"validated/ds={DS}/"))
    assert validated == ["links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    for name in validated:
        assert (lake.zone(layout.VALIDATED, DS) / name).read_bytes() == (source / name).read_bytes()
    assert sorted(k for k in keys if k.startswith(f"rejected/ds={DS}/")) == [
        f"rejected/ds={DS}/ratings_broken.csv", f"rejected/ds={DS}/ratings_broken.report.json",
    ]
    assert not any(k.startswith("landing/") for k in keys), "landing is cleared after routing"
    for table in ("bronze/ratings", "bronze/movies", "silver/ratings", "silver/movie_stats", "gold/recommendations",
                  "gold/similar_movies", "gold/popular_movies", "gold/model_metrics"):
        assert any(k.startswith(f"{table}/ds={DS}/part-") and k.endswith(".parquet") for k in keys), table
        assert f"{table}/ds={DS}/_SUCCESS" in keys, table
    assert any(k.startswith(f"models/ds={DS}/als_explicit/") for k in keys)
    assert not any(k.rsplit("/", 1)[1].startswith(".") for k in keys), "no Spark checksum files in the lake"
    assert not list((tmp_path / "staging").iterdir()), "the staging folder is cleaned up"

    summary = json.loads((lake.zone(layout.REPORTS, DS) / layout.RUN_SUMMARY).read_text())
    assert summary["lake"] == url
    assert summary["files_validated"] == 4 and summary["files_rejected"] == 1
    assert 0 < summary["metrics"]["als_explicit"]["rmse"] < 2
    assert summary["row_counts"]["silver"]["ratings"] > 0
    assert summary["outputs"]["recommendations"] == f"{url}/gold/recommendations/ds={DS}"
    assert summary["outputs"]["data_docs"] == f"{url}/reports/ds={DS}/data_docs/index.html"
    assert all(f["destination"].startswith(url + "/") for f in summary["files"])
    assert len(summary["sample_recommendations"]["1"]) == 10
    # The run's override reached the job (tuning is off: the rating model used it as given); the rest followed the env.
    assert summary["param_overrides"] == {"als_rank": ALS_RANK_PARAM}
    assert summary["settings"]["als_rank"] == ALS_RANK_PARAM and summary["settings"]["tune"] is False
    assert summary["models"]["als_explicit"]["params"]["rank"] == ALS_RANK_PARAM
    params_json = json.loads(lake.path(f"models/ds={DS}/params.json").read_text())
    assert params_json["spec"]["settings"] == summary["settings"]
    # The models' artifacts are in the lake, where params.json says (not in the deleted staging folder).
    for model in ("als_explicit", "ease_ials"):
        for rel in params_json["models"][model]["artifacts"].values():
            assert any(k.startswith(rel + "/") for k in keys), (model, rel)
    spark_report = json.loads((lake.zone(layout.REPORTS, DS) / layout.SPARK_REPORT).read_text())
    assert spark_report["staging"]["in"]["files"] == 4 and "lake_root" not in spark_report
    success = [m for m in mailbox.messages() if DS in m["Subject"] and "files validated" in m["Subject"]]
    assert len(success) == 1, [m["Subject"] for m in mailbox.messages()]

    # A rerun of the date (the same files landed again) leaves the same objects: no duplicates.
    csv_bytes = {k: lake.path(k).read_bytes() for k in keys if k.endswith(".csv")}
    part_counts = {k.rsplit("/", 1)[0] for k in keys if "/part-" in k}
    state = run_daily(remote, tmp_path, mailbox, source, "dags_test_rerun.log")
    assert state == "success", (tmp_path / "dags_test_rerun.log").read_text()[-6000:]
    keys_again = remote.keys()
    assert {k.rsplit("/", 1)[0] for k in keys_again if "/part-" in k} == part_counts
    same_layout = [k for k in keys if "/part-" not in k]
    assert [k for k in keys_again if "/part-" not in k] == same_layout
    for folder in part_counts:  # one Spark write per partition: as many part files as the first run
        assert sum(k.startswith(folder + "/") for k in keys_again) == sum(k.startswith(folder + "/") for k in keys)
    assert {k: lake.path(k).read_bytes() for k in keys_again if k.endswith(".csv")} == csv_bytes
    again = json.loads((lake.zone(layout.REPORTS, DS) / layout.RUN_SUMMARY).read_text())
    assert again["metrics"] == summary["metrics"] and again["row_counts"] == summary["row_counts"]

    # The secrets were used (the lake was written with its connection; mail went out after logging in)...
    assert mailbox.logins and set(mailbox.logins) == {"movielens"}
    # ... and show nowhere: Airflow's home (logs, metadata DB, config), the task logs (`dags test` prints
    # them), every lake object (records, reports, summaries, Data Docs, models' params.json), every email.
    secrets = {"lake secret": remote.secret, "SMTP password": mailbox.credentials[1]}
    task_logs = sorted(tmp_path.glob("dags_test*.log"))
    lake_objects = [(f"lake {k}", lake.path(k).read_bytes()) for k in remote.keys()]
    received = list(leaks.emails(mailbox.folder))
    assert len(task_logs) == 2 and len(lake_objects) > 50 and len(mailbox.messages()) >= 4
    # The search knows these secrets: it finds both in the connections that hold them.
    connections = [("connections", (remote.conn_json + mailbox.connection_uri_json()).encode())]
    assert {f.split(" (")[0] for f in leaks.find(secrets, connections)} == set(secrets)
    assert leaks.find(secrets, [*leaks.files(tmp_path / "airflow", *task_logs), *lake_objects, *received]) == []
