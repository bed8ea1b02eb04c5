"""The replay feed: a release split by rating time into a first drop and daily drops of new ratings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from movielens import config
from movielens.ingest import landing, replay
from movielens.lake import Lake

from spark_jobs.common import layout

HEADER = b"userId,movieId,rating,timestamp\n"


def write_release(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_bytes(HEADER + b"".join(f"{u},{m},{r},{t}\n".encode() for u, m, r, t in rows))
    (folder / "movies.csv").write_bytes(b"movieId,title,genres\n1,A (1999),Drama\n2,B (2001),Comedy\n")
    (folder / "links.csv").write_bytes(b"movieId,imdbId,tmdbId\n1,1,1\n2,2,2\n")
    (folder / "tags.csv").write_bytes(b"userId,movieId,tag,timestamp\n1,1,good,5\n")
    (folder / "notes.txt").write_text("not a MovieLens file")


def ratings_of(path):
    return path.read_bytes().splitlines(keepends=True)[1:]


def test_cut_points_split_the_newest_share_in_equal_counts():
    assert replay.cut_points(list(range(100)), 5, 0.2) == [0, 80, 85, 90, 95, 100]
    # Equal timestamps never straddle a cut: the cut at rank 85 moves back to the first rating of time 84.
    stamps = list(range(84)) + [84] * 4 + list(range(88, 100))
    assert replay.cut_points(stamps, 5, 0.2) == [0, 80, 84, 90, 95, 100]


def test_a_cut_inside_one_timestamp_leaves_an_empty_drop():
    stamps = [1] * 10 + [2] * 10
    cuts = replay.cut_points(stamps, 3, 0.4)
    assert cuts == [0, 10, 10, 20]  # drop 1 is empty: every rating at time 2 goes to drop 2
    assert list(replay.assign_drops(stamps, 3, 0.4)) == [0] * 10 + [2] * 10


def test_the_split_keeps_every_line_once_byte_for_byte_in_time_order(tmp_path):
    # File order is by user, as in MovieLens; times interleave across users; two ratings share time 50.
    rows = [(u, m, "4.0", t) for u, m, t in
            [(1, 1, 10), (1, 2, 90), (2, 1, 50), (2, 2, 60), (3, 1, 50), (3, 2, 20), (4, 1, 95), (4, 2, 30),
             (5, 1, 70), (5, 2, 80)]]
    write_release(tmp_path / "rel", rows)
    out = replay.split(tmp_path / "rel", 3, 0.4, tmp_path / "cache")
    lines = (tmp_path / "rel" / "ratings.csv").read_bytes().splitlines(keepends=True)[1:]
    drops = [ratings_of(out / f"drop-{k}" / "ratings.csv") for k in range(3)]
    assert sorted(sum(drops, [])) == sorted(lines)  # nothing lost, nothing twice
    # The 6 oldest (10, 20, 30, 50, 50, 60) first, in file order; then (70, 80) and (90, 95).
    assert drops[0] == [lines[i] for i in (0, 2, 3, 4, 5, 7)]
    assert drops[1] == [lines[i] for i in (8, 9)]
    assert drops[2] == [lines[i] for i in (1, 6)]
    assert sorted(p.name for p in (out / "drop-0").iterdir()) == ["links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    assert (out / "drop-0" / "movies.csv").read_bytes() == (tmp_path / "rel" / "movies.csv").read_bytes()
    assert [p.name for p in (out / "drop-1").iterdir()] == ["ratings.csv"]
    manifest = json.loads((out / replay.MANIFEST).read_text())
    assert [(d["ratings"], d["first_timestamp"], d["last_timestamp"]) for d in manifest["drops"]] == [
        (6, 10, 60), (2, 70, 80), (2, 90, 95)]


def test_the_split_is_made_once_and_again_when_the_source_changes(tmp_path):
    rows = [(1, 1, "3.0", t) for t in range(20)]
    write_release(tmp_path / "rel", rows)
    first = replay.split(tmp_path / "rel", 3, 0.5, tmp_path / "cache")
    (first / "drop-1" / "ratings.csv").write_bytes(HEADER)  # a reused split is not rewritten
    assert replay.split(tmp_path / "rel", 3, 0.5, tmp_path / "cache") == first
    assert ratings_of(first / "drop-1" / "ratings.csv") == []
    write_release(tmp_path / "rel", rows + [(2, 2, "5.0", 99)])
    again = replay.split(tmp_path / "rel", 3, 0.5, tmp_path / "cache")
    assert again != first
    assert ratings_of(again / "drop-2" / "ratings.csv")[-1] == b"2,2,5.0,99\n"


@pytest.mark.parametrize(("days", "share", "message"), [
    (1, 0.1, "2 to 366 dates"), (400, 0.1, "2 to 366 dates"), (7, 0.0, "between 0 and 1"), (7, 1.0, "between 0 and 1"),
])
def test_a_bad_window_shape_is_refused(tmp_path, days, share, message):
    write_release(tmp_path / "rel", [(1, 1, "3.0", 1)])
    with pytest.raises(ValueError, match=message):
        replay.split(tmp_path / "rel", days, share, tmp_path / "cache")


def test_a_ratings_line_without_a_timestamp_is_named(tmp_path):
    write_release(tmp_path / "rel", [(1, 1, "3.0", 1)])
    with open(tmp_path / "rel" / "ratings.csv", "ab") as f:
        f.write(b"2,2,4.0,soon\n")
    with pytest.raises(ValueError, match=r"ratings\.csv:3: no integer timestamp"):
        replay.split(tmp_path / "rel", 3, 0.5, tmp_path / "cache")


@pytest.fixture
def replay_settings(tmp_path, monkeypatch):
    write_release(tmp_path / "rel", [(u, u, "4.0", 1000 + u) for u in range(1, 41)])
    monkeypatch.setenv("MOVIELENS_LAKE_URL", (tmp_path / "lake").as_uri())
    monkeypatch.setenv("MOVIELENS_DIR", str(tmp_path / "rel"))
    monkeypatch.setenv("MOVIELENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MOVIELENS_REPLAY_START", "2026-11-01")
    monkeypatch.setenv("MOVIELENS_REPLAY_DAYS", "5")
    monkeypatch.setenv("MOVIELENS_REPLAY_NEW_SHARE", "0.2")
    return config.load()


def test_each_date_of_the_window_lands_its_drop(replay_settings):
    landed = {}
    for k in range(5):
        ds = (dt.date(2026, 11, 1) + dt.timedelta(days=k)).isoformat()
        result = landing.land(replay_settings, ds, "replay")
        assert f"replay drop {k} of 4" in result["source"]
        folder = Lake.from_settings(replay_settings).zone(layout.LANDING, ds)
        landed[k] = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(landed[0]) == ["links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    assert all(sorted(landed[k]) == ["ratings.csv"] for k in range(1, 5))
    users = [sorted(int(line.split(b",")[0]) for line in landed[k]["ratings.csv"].splitlines()[1:]) for k in range(5)]
    assert users == [list(range(1, 33)), [33, 34], [35, 36], [37, 38], [39, 40]]


def test_a_date_outside_the_window_or_no_start_is_a_clear_error(replay_settings):
    with pytest.raises(ValueError, match=r"ds=2026-11-06 is outside the replay window 2026-11-01 \.\. 2026-11-05"):
        landing.land(replay_settings, "2026-11-06", "replay")
    with pytest.raises(ValueError, match="needs MOVIELENS_REPLAY_START"):
        landing.land(dataclasses.replace(replay_settings, replay_start=None), "2026-11-01", "replay")


def test_replay_settings_are_checked(monkeypatch):
    monkeypatch.setenv("MOVIELENS_REPLAY_START", "2026-13-01")
    with pytest.raises(ValueError, match="MOVIELENS_REPLAY_START: ds must be a real calendar date"):
        config.load()
    monkeypatch.setenv("MOVIELENS_REPLAY_START", "2026-11-01")
    monkeypatch.setenv("MOVIELENS_REPLAY_NEW_SHARE", "a lot")
    with pytest.raises(ValueError, match="MOVIELENS_REPLAY_NEW_SHARE must be a number"):
        config.load()
