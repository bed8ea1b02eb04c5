"""Secrets: the leak search finds a planted secret in every form it looks for; Spark's arguments carry no
secret on any backend; connections come from a secrets backend set up as the README says.

The end-to-end proof (a run whose connections hold secrets, then every log, lake object and email
searched) is ``test_daily_dag_end_to_end_on_remote_lake_and_rerun`` in tests/integration/test_remote_lakes.py.
"""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage
from urllib.parse import quote

import pytest

from movielens import config
from movielens.compute import job_arguments
from movielens.lake import Lake
from spark_jobs.common import layout
from spark_jobs.common.spec import TUNE, JobSpec, Tuning
from tests import leaks

SECRET = "lake+secret/0123456789abcdef"
DS = "2026-11-20"


def write_email(path, body: str, cte: str) -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "report", "a@example.test", "b@example.test"
    message.set_content(body, subtype="html", cte=cte)
    path.write_bytes(message.as_bytes())


def test_the_search_finds_a_planted_secret_in_every_form(tmp_path):
    secrets = {"lake secret": SECRET}
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "task.log").write_text(f"[info] connecting with {SECRET}\n")
    assert leaks.find(secrets, leaks.files(tmp_path / "logs")) == [f"lake secret (raw) in {tmp_path / 'logs' / 'task.log'}"]

    (tmp_path / "summary.json").write_text(json.dumps({"uri": f"s3://AKIA:{quote(SECRET, safe='')}@bucket/x"}))
    assert "(url-quoted)" in leaks.find(secrets, leaks.files(tmp_path / "summary.json"))[0]

    (tmp_path / "auth.log").write_bytes(b"AUTH PLAIN " + base64.b64encode(b"\0movielens\0" + SECRET.encode()))
    assert "(base64 (offset" in leaks.find(secrets, leaks.files(tmp_path / "auth.log"))[0]

    mail = tmp_path / "mail"
    mail.mkdir()
    write_email(mail / "1.eml", f"<p>{SECRET}</p>", "base64")
    # Quoted-printable wraps this line at 76 characters, inside the secret: found only once decoded.
    write_email(mail / "2.eml", "x" * 70 + SECRET + " é", "quoted-printable")
    assert not leaks.find(secrets, [(str(mail / "2.eml"), (mail / "2.eml").read_bytes())])
    found = leaks.find(secrets, leaks.emails(mail))
    assert any("1.eml (part 0, decoded)" in f for f in found) and any("2.eml (part 0, decoded)" in f for f in found)

    (tmp_path / "clean.log").write_text("nothing to see: lake+secret/ is only half of it")
    assert leaks.find(secrets, leaks.files(tmp_path / "clean.log")) == []
    with pytest.raises(ValueError):
        leaks.secret_forms("short")


@pytest.mark.parametrize("backend", ["s3", "abfs"])
def test_spark_arguments_carry_no_secret_on_any_backend(backend, monkeypatch):
    """The arguments show in `ps`, task logs and cluster run pages: the lake's credentials stay out."""
    from movielens.compute.emr import spark_submit_args

    if backend == "s3":
        conn = {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": SECRET, "extra": {"region_name": "eu-west-1"}}
        url = "s3://bucket/movielens"
    else:
        conn = {"conn_type": "wasb", "extra": {"connection_string": f"AccountName=acct01;AccountKey={SECRET};"}}
        url = "abfs://container/movielens"
    monkeypatch.setenv("AIRFLOW_CONN_MOVIELENS_LAKE", json.dumps(conn))
    monkeypatch.setenv("MOVIELENS_LAKE_URL", url)
    monkeypatch.setenv("MOVIELENS_LAKE_CONN_ID", "movielens_lake")
    settings = config.load()
    lake_root = Lake.from_settings(settings).spark_root()
    assert lake_root.startswith(("s3a://bucket/", "abfss://container@acct01."))  # the connection was read
    # A decision's reason names the lake's files, as movielens.tuning writes it (no listing of a fake bucket).
    lake = Lake.from_settings(settings)
    reason = f"no run tuned with these settings; passed over {lake.uri(lake.zone(layout.MODELS, DS) / layout.MODEL_PARAMS)}"
    arguments = job_arguments(lake_root, DS, JobSpec.build(settings.spec, Tuning(TUNE, reason)))
    step = spark_submit_args(arguments, "s3://code/v1", "daily.py", ["--deploy-mode", "cluster"])
    assert leaks.find({"lake secret": SECRET}, [("job arguments", " ".join(arguments).encode()),
                                                ("EMR step", " ".join(step).encode())]) == []


def test_connections_from_aws_secrets_manager_as_the_readme_sets_it_up(moto_server, monkeypatch):
    """SecretsManagerBackend with the README's kwargs (and a local endpoint) returns the stored connection."""
    from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

    smtp = {"conn_type": "smtp", "host": "smtp.example.test", "port": 587, "login": "movielens", "password": SECRET}
    env = moto_server.secrets_backend_env({"smtp_default": smtp})
    assert env["AIRFLOW__SECRETS__BACKEND"] == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, env[name])
    backend = SecretsManagerBackend(**json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"]))
    conn = backend.get_connection("smtp_default")
    assert (conn.host, conn.port, conn.login, conn.password) == ("smtp.example.test", 587, "movielens", SECRET)
    assert backend.get_connection("spark_default") is None, "not stored there: Airflow goes on to AIRFLOW_CONN_*"
    assert backend.get_variable("anything") is None and backend.get_config("anything") is None  # prefixes off


def test_key_vault_secret_names_are_the_readmes():
    """AzureKeyVaultBackend looks a connection up as <connections_prefix>-<conn id with - for _>."""
    from airflow.providers.microsoft.azure.secrets.key_vault import AzureKeyVaultBackend

    assert AzureKeyVaultBackend.build_path("airflow-connections", "smtp_default") == "airflow-connections-smtp-default"
    assert AzureKeyVaultBackend.build_path("airflow-connections", "wasb_default") == "airflow-connections-wasb-default"
