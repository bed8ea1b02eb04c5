"""The daily loop through the DAG (`airflow dags test`, the file:// lake, a real SMTP server): a release
replayed as a daily feed over three dates, in order.

- D1 lands the first drop (catalogue and older ratings) and publishes: the first run;
- D2 lands the next day's new ratings with a deliberately worse model from the trigger form (the top-N
  model limited to the 10 most-rated movies, a rank-1 rating model): the backtest scores D1's lists against
  D2's ratings; the gate holds D2 back, D1's lists stay served, and a "model held back" email says why;
- D3 lands a ratings file without a row, with the same worse model and publish = force: the volume email
  goes out, nothing is scored, and the forced lists are served.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from devenv import local_airflow
from devenv.mailbox import Mailbox
from spark_jobs.common import layout, spec
from tests import e2e

pytestmark = pytest.mark.e2e

DAILY = "movielens_daily"
D1, D2, D3 = "2026-11-10", "2026-11-11", "2026-11-12"
WORSE = {"top_n_max_items": 10, "als_rank": 1, "als_reg_param": 10.0}
NDCG = "ndcg_at_10"


@dataclasses.dataclass
class Loop:
    lake: Path
    states: dict[str, str]
    logs: dict[str, str]
    mail: Mailbox
    replay: Path  # the cached split of the release

    def json(self, zone: str, ds: str, name: str) -> dict:
        return json.loads((self.lake / zone / f"ds={ds}" / name).read_text())

    def summary(self, ds: str) -> dict:
        return self.json(layout.REPORTS, ds, layout.RUN_SUMMARY)

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.mail.messages()]

    def body(self, subject_part: str, kind: str = "plain") -> str:
        [message] = [m for m in self.mail.messages() if subject_part in m["Subject"]]
        return message.get_body(preferencelist=(kind,)).get_content()


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Loop:
    from movielens.ingest import synthetic

    work = tmp_path_factory.mktemp("loop")
    synthetic.generate_size(work / "release", "tiny", seed=5, end=dt.date.fromisoformat(D1))
    with Mailbox(work / "mail") as mail:
        env = e2e.airflow_env_for(work, mail, work / "release", {
            "MOVIELENS_TUNE": "false", "MOVIELENS_DEMO_USERS": "1", "MOVIELENS_REPLAY_START": D1,
            "MOVIELENS_REPLAY_DAYS": "3", "MOVIELENS_REPLAY_NEW_SHARE": "0.2"})
        e2e.migrate(env)
        states, logs = {}, {}
        runs = [(D1, {"ingest": "replay"}), (D2, {"ingest": "replay", **WORSE}),
                (D3, {"ingest": "none", "publish": "force", **WORSE})]
        for ds, conf in runs:
            if ds == D3:  # a drop whose ratings file has no row
                landing = work / "lake" / layout.LANDING / f"ds={ds}"
                landing.mkdir(parents=True)
                (landing / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
            log = work / f"dags_test-{ds}.log"
            states[ds] = local_airflow.dags_test(DAILY, ds, env, conf=conf, log_file=log)
            logs[ds] = log.read_text()
        [replay] = (work / "cache" / "replay").iterdir()
        yield Loop(work / "lake", states, logs, mail, replay)


def ratings_of(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_date_succeeds_and_lands_its_drop(loop):
    for ds, state in loop.states.items():
        assert state == "success", (ds, loop.logs[ds][-4000:])
    first, second = (ratings_of(loop.replay / f"drop-{k}" / "ratings.csv") for k in (0, 1))
    assert loop.summary(D1)["drift"]["metrics"]["ratings_landed"] == len(first)
    assert loop.summary(D2)["drift"]["metrics"]["ratings_landed"] == len(second)
    assert max(int(r["timestamp"]) for r in first) <= min(int(r["timestamp"]) for r in second)
    assert {f["file"] for f in loop.summary(D1)["files"]} == {"movies.csv", "links.csv", "tags.csv", "ratings.csv"}
    assert [f["file"] for f in loop.summary(D2)["files"]] == ["ratings.csv"]
    # Silver grows by the new pairs of D2 (every pair of the release is rated once).
    silver = {ds: loop.summary(ds)["row_counts"]["silver"]["ratings"] for ds in (D1, D2)}
    assert silver[D2] == silver[D1] + len(second)


def test_the_first_run_publishes_with_nothing_to_backtest(loop):
    s = loop.summary(D1)
    assert s["publication"]["published"] and s["publication"]["reasons"] == ["the first run: no lists were served before"]
    assert s["backtest"]["status"] == f"no lists were served before {D1}: nothing to score yet"
    assert "Publish gate: published" in loop.body(f"{DAILY} {D1}:")


def test_the_next_day_backtest_scores_the_served_lists_against_the_new_ratings(loop):
    backtest = loop.summary(D2)["backtest"]
    second = ratings_of(loop.replay / "drop-1" / "ratings.csv")
    assert (backtest["status"], backtest["served_ds"], backtest["new_pairs"]) == ("scored", D1, len(second))
    served, popular = backtest["lists"]["served"], backtest["lists"]["popularity"]
    assert served["users_with_new_ratings"] == len({r["userId"] for r in second}) == served["evaluated_users"]
    assert popular["evaluated_users"] == served["evaluated_users"]
    for metrics in (served, popular):
        assert 0 <= metrics[NDCG] <= 1 and 0 <= metrics["precision_at_10"] <= 1
    table = loop.lake / layout.GOLD / "backtest" / f"ds={D2}"
    assert any(table.glob("*.parquet"))
    assert f"Backtest: the lists served since ds={D1}" in loop.body(f"{DAILY} {D2}:")


def test_a_worse_model_is_held_back_and_the_champions_lists_stay_served(loop, monkeypatch):
    from movielens.serving import lookup

    record = loop.json(layout.REPORTS, D2, layout.PUBLICATION)
    assert (record["published"], record["served_ds"], record["champion_ds"]) == (False, D1, D1)
    failed = [c for c in record["comparisons"] if not c["passed"]]
    assert {c["model"] for c in failed} >= {spec.TOP_N_MODEL}, record
    assert any(r.startswith(f"{spec.TOP_N_MODEL} {NDCG}") for r in record["reasons"])
    assert loop.summary(D2)["serving"]["published"] is False
    body = loop.body(f"model held back for {D2}")
    assert f"the lists of ds={D1} stay served" in body and "publish = force" in body and NDCG in body
    assert f"HELD BACK: the lists of ds={D1} stay served" in loop.body(f"{DAILY} {D2}:")
    monkeypatch.setenv("MOVIELENS_LAKE_URL", loop.lake.as_uri())
    answer = lookup.lookup_recommendations(1, n=5, ds=D2)
    assert answer["model_ds"] == D1 and answer["fallback"] is None
    # Both models compared: the champion's parameters were fitted and evaluated on D2's split.
    assert {c["model"] for c in record["comparisons"]} == {spec.TOP_N_MODEL, spec.RATING_MODEL}
    assert "champion_eval" in loop.json(layout.REPORTS, D2, layout.SPARK_REPORT)["train_timings_s"]


def test_a_drop_without_ratings_sends_the_volume_email_and_force_publishes(loop, monkeypatch):
    from movielens.serving import lookup

    s = loop.summary(D3)
    assert s["drift"]["alerts"] == ["no ratings landed"] and s["drift"]["metrics"]["ratings_landed"] == 0
    assert s["backtest"]["status"] == f"no ratings landed on {D3}"
    assert f"[movielens] data incident: unusual ratings for {D3}" in loop.subjects()
    assert "no ratings landed" in loop.body(f"unusual ratings for {D3}", "html")
    record = s["publication"]
    assert (record["published"], record["forced"], record["champion_ds"]) == (True, True, D1)
    assert not all(c["passed"] for c in record["comparisons"]), "forced past a failing comparison"
    monkeypatch.setenv("MOVIELENS_LAKE_URL", loop.lake.as_uri())
    assert lookup.lookup_recommendations(1, n=5)["model_ds"] == D3
    # Exactly one held-back email (D2) and one drift email (D3) in the whole loop.
    assert sum("model held back" in x for x in loop.subjects()) == 1
    assert sum("unusual ratings" in x for x in loop.subjects()) == 1


def test_an_unknown_user_gets_the_fallback_not_an_error(loop, monkeypatch):
    from movielens.serving import cli, lookup

    monkeypatch.setenv("MOVIELENS_LAKE_URL", loop.lake.as_uri())
    answer = lookup.lookup_recommendations(987654, n=10)
    assert answer["fallback"]["basis"] == "the most-rated movies" and len(answer["rows"]) == 10
    assert answer["model_ds"] == D3
    assert cli.main(["recommend", "--user", "987654", "-n", "3"]) == 0


def test_the_report_shows_the_backtest_trend_the_gate_and_the_drift(loop):
    html = (loop.lake / layout.REPORTS / f"ds={D3}" / layout.RUN_REPORT).read_text(encoding="utf-8")
    assert 'id="loop"' in html and "Next-day backtest over dates" in html
    for ds in (D1, D2, D3):
        assert f"<td>{ds}</td>" in html
    assert "held back" in html and "published (forced)" in html and "Data alert: no ratings landed" in html
