"""Validation: good files pass, each kind of bad input is rejected with the right check and line."""

from __future__ import annotations

import datetime as dt

import pytest

from movielens.validation import validate_file

RUN_DATE = dt.date(2026, 11, 20)
TS = 964982703  # 2000-07-30
FUTURE = int(dt.datetime(2026, 11, 21, 0, 0, 1, tzinfo=dt.timezone.utc).timestamp())
KNOWN = {1, 2, 3, 4}
R = "userId,movieId,rating,timestamp\n"
M = "movieId,title,genres\n"


def write(tmp_path, name: str, data: str | bytes):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def check(tmp_path, kind, data, known=KNOWN):
    return validate_file(write(tmp_path, f"{kind}.csv", data), kind, RUN_DATE, known_movie_ids=known if kind in ("ratings", "tags") else None)


GOOD = {
    "ratings": R + f"1,1,4.0,{TS}\n1,2,3.5,{TS}\n2,1,0.5,{TS}\n",
    "movies": M + '1,Toy Story (1995),Adventure|Animation|Children\n2,"American President, The (1995)",Comedy|Drama|Romance\n3,"Quote ""Test"" (2001)",(no genres listed)\n',
    "tags": "userId,movieId,tag,timestamp\n1,1,funny,%d\n2,3,\"dark, twisty\",%d\n" % (TS, TS),
    "links": "movieId,imdbId,tmdbId\n1,0114709,862\n2,0113228,\n",
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_good_files_pass(tmp_path, kind):
    outcome = check(tmp_path, kind, GOOD[kind])
    assert outcome.passed, outcome.failures
    assert outcome.rows == GOOD[kind].count("\n") - 1
    assert outcome.gx_summary["unsuccessful_expectations"] == 0 and outcome.gx_summary["evaluated_expectations"] >= 6


def test_crlf_and_bom_are_accepted_with_notes(tmp_path):
    data = b"\xef\xbb\xbf" + GOOD["movies"].replace("\n", "\r\n").encode()
    outcome = check(tmp_path, "movies", data)
    assert outcome.passed, outcome.failures
    assert any("byte-order mark" in n for n in outcome.notes) and any("CRLF" in n for n in outcome.notes)


BAD = [
    ("empty", "ratings", b"", "empty_file", None),
    ("header only", "ratings", R, "header_only", None),
    ("binary", "ratings", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not_text", 3),
    ("latin-1", "movies", M.encode() + "1,Am\xe9lie (2001),Comedy\n".encode("latin-1"), "encoding", 2),
    ("wrong column names", "ratings", "user,movie,rating,timestamp\n1,1,4.0,%d\n" % TS, "header", 1),
    ("missing column", "ratings", "userId,movieId,rating\n1,1,4.0\n", "header", 1),
    ("extra column", "ratings", "userId,movieId,rating,timestamp,extra\n1,1,4.0,%d,x\n" % TS, "header", 1),
    ("reordered columns", "ratings", "movieId,userId,rating,timestamp\n1,1,4.0,%d\n" % TS, "header", 1),
    ("wrong field count", "ratings", R + f"1,1,4.0,{TS}\n1,2,3.5\n2,1,4.0,{TS}\n", "column_count", 3),
    ("truncated last line", "ratings", R + f"1,1,4.0,{TS}\n1,2,3.", "truncated_last_line", 3),
    ("unbalanced quote", "movies", M + '1,"Toy Story (1995),Comedy\n2,Heat (1995),Action\n', "csv_parse", None),
    ("rating out of range", "ratings", R + f"1,1,7.5,{TS}\n", "rating:expect_column_values_to_be_in_set", 2),
    ("rating not a half step", "ratings", R + f"1,1,3.3,{TS}\n", "rating:expect_column_values_to_be_in_set", 2),
    ("null rating", "ratings", R + f"1,1,,{TS}\n", "rating:expect_column_values_to_not_be_null", 2),
    ("non-numeric user id", "ratings", R + f"abc,1,4.0,{TS}\n", "userId:expect_column_values_to_not_be_null", 2),
    ("negative movie id", "ratings", R + f"1,-3,4.0,{TS}\n", "movieId:expect_column_values_to_be_between", 2),
    ("duplicate pair", "ratings", R + f"1,1,4.0,{TS}\n1,1,3.0,{TS}\n", "userId+movieId:expect_compound_columns_to_be_unique", 2),
    ("future timestamp", "ratings", R + f"1,1,4.0,{FUTURE}\n", "timestamp:expect_column_values_to_be_between", 2),
    ("timestamp before 1995", "ratings", R + "1,1,4.0,700000000\n", "timestamp:expect_column_values_to_be_between", 2),
    ("unknown movie ids", "ratings", R + f"1,1,4.0,{TS}\n1,99,4.0,{TS}\n", "movie_id_known", 3),
    ("tag on unknown movie", "tags", "userId,movieId,tag,timestamp\n1,77,funny,%d\n" % TS, "movie_id_known", 2),
    ("duplicate movie ids", "movies", M + "1,A (1999),Drama\n1,B (2000),Drama\n", "movieId:expect_column_values_to_be_unique", 2),
    ("unknown genre", "movies", M + "1,A (1999),Drama|Cooking\n", "genres:expect_column_values_to_match_regex", 2),
    ("titles without year", "movies", M + "1,Untitled,Drama\n2,Another,Drama\n", "title:expect_column_values_to_match_regex", 2),
    ("null title", "movies", M + "1,,Drama\n", "title:expect_column_values_to_not_be_null", 2),
    ("links bad imdb id", "links", "movieId,imdbId,tmdbId\n1,tt0114709,862\n", "imdbId:expect_column_values_to_match_regex", 2),
]


@pytest.mark.parametrize("case, kind, data, expected_check, line", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_rejected_with_reason(tmp_path, case, kind, data, expected_check, line):
    outcome = check(tmp_path, kind, data)
    assert not outcome.passed, f"{case} passed"
    checks = [f.check for f in outcome.failures]
    assert expected_check in checks, f"{case}: got {checks}"
    failure = outcome.failures[checks.index(expected_check)]
    assert failure.message
    if line is not None:
        assert failure.examples and failure.examples[0]["line"] == line, failure.examples


def test_examples_show_the_raw_value(tmp_path):
    outcome = check(tmp_path, "ratings", R + f"1,1,4.0,{TS}\nx7,2,4.0,{TS}\n")
    failure = next(f for f in outcome.failures if f.check.startswith("userId:"))
    assert failure.examples == [{"line": 3, "value": "x7"}]


def test_a_few_unknown_movies_in_a_big_file_are_tolerated_and_noted(tmp_path):
    rows = "".join(f"{u},{m},4.0,{TS}\n" for u in range(1, 501) for m in (1, 2, 3))
    outcome = check(tmp_path, "ratings", R + rows + f"9,999,4.0,{TS}\n")
    assert outcome.passed, outcome.failures
    assert any("movie_id_known" in n and "999" in n for n in outcome.notes)


def test_duplicates_across_chunks_are_found(tmp_path, monkeypatch):
    import movielens.validation.runner as runner

    monkeypatch.setattr(runner, "CHUNK_ROWS", 2)
    outcome = check(tmp_path, "ratings", R + f"1,1,4.0,{TS}\n1,2,4.0,{TS}\n2,2,4.0,{TS}\n1,1,3.0,{TS}\n")
    assert [f.check for f in outcome.failures] == ["userId+movieId:expect_compound_columns_to_be_unique"]
    assert outcome.gx_summary["chunks"] == 2
