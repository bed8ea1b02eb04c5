"""movielens.validation: file-level checks, the GX suites, the streaming evaluator and its GX cross-check.

Every test writes its own small file (tmp_path). GX is imported once per session (module cache in
movielens.validation.suites), so the whole module runs in seconds.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from movielens.validation import FILE_KINDS, GX_DISAGREEMENT, ValidationOutcome, max_timestamp_for, validate_file

RUN_DATE = dt.date(2024, 6, 30)
END_OF_RUN_DATE = max_timestamp_for(RUN_DATE)  # 2024-06-30T23:59:59Z
TS = 1_000_000_000  # 2001-09-09, a valid timestamp

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
MOVIES_HEADER = "movieId,title,genres\n"
TAGS_HEADER = "userId,movieId,tag,timestamp\n"
LINKS_HEADER = "movieId,imdbId,tmdbId\n"

GOOD = {
    "ratings": RATINGS_HEADER + "".join(f"{u},{m},{r},{TS + u * 10 + m}\n" for u, m, r in [
        (1, 1, "4.0"), (1, 2, "3.5"), (1, 3, "5.0"), (2, 1, "0.5"), (2, 4, "2.5"), (3, 2, "1"), (3, 5, "4.5"),
    ]),
    "movies": MOVIES_HEADER + (
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        '3,"Shawshank Redemption, The (1994)",Crime|Drama\n'
        "4,Stranger Things (2016–2019),Drama|Fantasy|Horror\n"
        "5,Hyena Road (2015) ,(no genres listed)\n"
        '6,"""Great Performances"" Cats (1998)",Musical\n'
    ),
    "tags": TAGS_HEADER + (
        f"2,1,funny,{TS}\n"
        f'2,2,"Highly quotable, really",{TS + 1}\n'
        f"3,1,Pixar,{TS + 2}\n"
    ),
    "links": LINKS_HEADER + "1,0114709,862\n2,0113497,8844\n3,0113228,\n",
}
KNOWN = {1, 2, 3, 4, 5, 6}


def write(tmp_path: Path, content: str | bytes, name: str = "file.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def check(tmp_path, content, kind="ratings", **kw) -> ValidationOutcome:
    outcome = validate_file(write(tmp_path, content, f"{kind}.csv"), kind, kw.pop("run_date", RUN_DATE), **kw)
    json.dumps(outcome.to_dict())  # always JSON-serialisable
    return outcome


def rejected(outcome: ValidationOutcome, name: str):
    assert outcome.passed is False, outcome
    found = [f for f in outcome.failures if f.check == name]
    assert found, f"no {name!r} failure in {outcome.checks}: {outcome.failures}"
    return found[0]


def lines_of(failure) -> list[int]:
    return [e["line"] for e in failure.examples]


# --- the suites ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_suite_json_is_a_gx_suite_with_check_names(kind):
    from movielens.validation.suites import gx_suite, load_spec

    spec = load_spec(kind)
    suite = gx_suite(spec)
    assert len(suite.expectations) == len(spec.document["expectations"])
    again = suite.to_json_dict()
    assert [e["type"] for e in again["expectations"]] == [e["type"] for e in spec.document["expectations"]]
    assert all((e.get("meta") or {}).get("check") for e in spec.document["expectations"])


def test_suites_cover_the_required_rules():
    from movielens.validation.suites import load_spec

    ratings = {e.check: e for e in load_spec("ratings").expectations}
    assert load_spec("ratings").columns == ["userId", "movieId", "rating", "timestamp"]
    assert load_spec("movies").columns == ["movieId", "title", "genres"]
    assert load_spec("tags").columns == ["userId", "movieId", "tag", "timestamp"]
    assert load_spec("links").columns == ["movieId", "imdbId", "tmdbId"]
    assert ratings["timestamp_range"].kwargs["max_value"] == {"$PARAMETER": "max_timestamp"}
    assert ratings["timestamp_range"].kwargs["min_value"] == 788918400  # 1995-01-01T00:00:00Z
    assert ratings["user_movie_unique"].type == "expect_compound_columns_to_be_unique"
    movies = {e.check: e for e in load_spec("movies").expectations}
    assert movies["title_year_format"].kwargs["mostly"] == 0.95
    assert "tmdbId_not_null" not in {e.check for e in load_spec("links").expectations}


def test_max_timestamp_is_the_last_second_of_the_run_date():
    assert max_timestamp_for(dt.date(2024, 6, 30)) == int(dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc).timestamp()) - 1


# --- good files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_good_file_passes(tmp_path, kind):
    outcome = check(tmp_path, GOOD[kind], kind, known_movie_ids=KNOWN)
    assert outcome.passed, outcome.failures
    assert outcome.rows == GOOD[kind].count("\n") - 1
    summary = outcome.gx_summary
    assert summary["gx_covers_file"] and summary["gx_disagreements"] == 0
    assert summary["statistics"]["unsuccessful_expectations"] == 0
    assert all(r["gx"] is not None and r["gx"]["success"] for r in summary["results"]), summary["results"]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_crlf_and_bom_are_accepted_with_notes(tmp_path, kind):
    content = "\ufeff" + GOOD[kind].replace("\n", "\r\n")
    outcome = check(tmp_path, content, kind, known_movie_ids=KNOWN)
    assert outcome.passed, outcome.failures
    assert any("byte-order mark" in n for n in outcome.notes)
    assert any("CRLF" in n for n in outcome.notes)


def test_quoted_titles_with_commas_and_quotes_pass_with_a_note(tmp_path):
    outcome = check(tmp_path, GOOD["movies"], "movies")
    assert outcome.passed
    assert any("quoted fields" in n for n in outcome.notes)


def test_missing_final_line_break_is_accepted_when_the_line_is_complete(tmp_path):
    outcome = check(tmp_path, GOOD["ratings"].rstrip("\n"))
    assert outcome.passed, outcome.failures
    assert any("no line break after the last line" in n for n in outcome.notes)


def test_blank_lines_at_the_end_are_accepted(tmp_path):
    outcome = check(tmp_path, GOOD["ratings"] + "\n\n")
    assert outcome.passed, outcome.failures
    assert any("2 blank line(s) at the end" in n for n in outcome.notes)


def test_links_without_tmdb_id_pass(tmp_path):
    outcome = check(tmp_path, LINKS_HEADER + "1,0114709,\n2,0113497,8844\n", "links")
    assert outcome.passed, outcome.failures


def test_known_movie_ids_left_out_gives_a_note(tmp_path):
    outcome = check(tmp_path, GOOD["ratings"])
    assert outcome.passed
    assert any("movie_id_known: not checked" in n for n in outcome.notes)


def test_stream_objects_that_are_not_local_paths(tmp_path):
    class Remote:  # like ObjectStoragePath: .open("rb") and .name only
        name = "ratings.csv"

        def open(self, mode):
            assert mode == "rb"
            return io.BytesIO(GOOD["ratings"].encode())

    outcome = validate_file(Remote(), "ratings", RUN_DATE)
    assert outcome.passed and outcome.rows == 7


def test_unknown_kind_raises(tmp_path):
    with pytest.raises(ValueError):
        validate_file(write(tmp_path, GOOD["ratings"]), "ratingz", RUN_DATE)


# --- file-level rejections -----------------------------------------------------------------------


def test_empty_file(tmp_path):
    outcome = check(tmp_path, b"")
    rejected(outcome, "empty_file")
    assert outcome.rows is None and outcome.gx_summary is None


def test_file_of_line_breaks_only_is_empty(tmp_path):
    rejected(check(tmp_path, "\n\r\n  \n"), "empty_file")


@pytest.mark.parametrize("content", [RATINGS_HEADER, RATINGS_HEADER.strip(), RATINGS_HEADER + "\n\n"])
def test_header_only(tmp_path, content):
    outcome = check(tmp_path, content)
    rejected(outcome, "header_only")
    assert outcome.rows == 0


def test_binary_file(tmp_path):
    failure = rejected(check(tmp_path, b"PK\x03\x04\x14\x00\x00\x00\x08\x00 zip bytes"), "binary")
    assert "byte offset 5" in failure.message


def test_nul_byte_in_a_data_line(tmp_path):
    content = (RATINGS_HEADER + "1,1,4.0,1000000000\n1,2,4\x00.0,1000000000\n").encode()
    failure = rejected(check(tmp_path, content), "binary")
    assert lines_of(failure) == [3]


def test_latin1_bytes_are_not_utf8(tmp_path):
    content = (MOVIES_HEADER + "1,Toy Story (1995),Comedy\n2,Amélie (2001),Comedy|Romance\n").encode("latin-1")
    failure = rejected(check(tmp_path, content, "movies"), "not_utf8")
    offset = content.index(b"\xe9")
    assert f"byte offset {offset}" in failure.message and "line 3" in failure.message
    assert lines_of(failure) == [3]


def test_utf8_cut_inside_a_character_at_the_end(tmp_path):
    content = (MOVIES_HEADER + "1,Am").encode() + "é".encode()[:1]  # ends after the first byte of é
    rejected(check(tmp_path, content, "movies"), "not_utf8")


def test_truncated_last_line(tmp_path):
    outcome = check(tmp_path, RATINGS_HEADER + "1,1,4.0,1000000000\n1,2,4.")
    failure = rejected(outcome, "truncated_last_line")
    assert failure.examples == [{"line": 3, "value": "1,2,4."}]
    assert "column_count" not in outcome.checks  # the cut line is reported once


def test_wrong_column_count_lines_with_line_numbers(tmp_path):
    content = RATINGS_HEADER + "1,1,4.0,1000000000\n1,2\n1,3,4.0,1000000000\n1,4,4.0,1000000000,extra\n1,5,4.0,1000000000\n"
    outcome = check(tmp_path, content)
    failure = rejected(outcome, "column_count")
    assert failure.examples == [{"line": 3, "value": "1,2"}, {"line": 5, "value": "1,4,4.0,1000000000,extra"}]
    assert outcome.checks == ["column_count"]  # the other rows were all checked, and are fine
    assert outcome.rows == 5


def test_column_count_examples_stop_at_20(tmp_path):
    content = RATINGS_HEADER + "".join(f"{i},1\n" for i in range(1, 31))
    failure = rejected(check(tmp_path, content), "column_count")
    assert len(failure.examples) == 20 and failure.message.startswith("30 line(s)")


def test_unbalanced_quote(tmp_path):
    content = MOVIES_HEADER + '1,"Toy Story (1995),Comedy\n2,Jumanji (1995),Fantasy\n'
    failure = rejected(check(tmp_path, content, "movies"), "unbalanced_quote")
    assert lines_of(failure) == [2]


def test_quoted_field_spanning_lines(tmp_path):
    content = MOVIES_HEADER + '1,"Toy Story\n(1995)",Comedy\n2,Jumanji (1995),Fantasy\n'
    failure = rejected(check(tmp_path, content, "movies"), "embedded_newline")
    assert "lines 2-3" in failure.message


def test_stray_carriage_return(tmp_path):
    content = RATINGS_HEADER + "1,1,4.0,1000000000\r1,2,4.0,1000000000\n"
    failure = rejected(check(tmp_path, content), "stray_carriage_return")
    assert lines_of(failure) == [2]


def test_blank_line_between_rows(tmp_path):
    content = RATINGS_HEADER + "1,1,4.0,1000000000\n\n1,2,4.0,1000000000\n"
    failure = rejected(check(tmp_path, content), "blank_line")
    assert lines_of(failure) == [3]


# --- header --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, words",
    [
        ("userId,movieId,score,timestamp", ["missing ['rating']", "unexpected ['score']"]),  # wrong name
        ("userId,movieId,rating", ["missing ['timestamp']"]),  # missing
        ("userId,movieId,rating,timestamp,source", ["unexpected ['source']"]),  # extra
        ("movieId,userId,rating,timestamp", ["wrong order"]),  # reordered
        ("userId, movieId, rating, timestamp", ["missing"]),  # spaces are not trimmed
        ("UserId,MovieId,Rating,Timestamp", ["missing"]),  # case matters
    ],
)
def test_header_must_match_the_suite(tmp_path, header, words):
    outcome = check(tmp_path, header + "\n1,1,4.0,1000000000\n")
    failure = rejected(outcome, "columns")
    assert all(w in failure.message for w in words), failure.message
    assert failure.examples == [{"line": 1, "value": header}]
    assert outcome.gx_summary is None


def test_quoted_header_names_are_fine(tmp_path):
    outcome = check(tmp_path, '"userId","movieId","rating","timestamp"\n1,1,4.0,1000000000\n')
    assert outcome.passed, outcome.failures


def test_blank_first_line(tmp_path):
    rejected(check(tmp_path, "\n" + GOOD["ratings"]), "columns")


# --- ratings rows --------------------------------------------------------------------------------


def ratings(*rows: str) -> str:
    return RATINGS_HEADER + "".join(r + "\n" for r in rows)


@pytest.mark.parametrize(
    "value, checks",
    [
        ("7.0", {"rating_range", "rating_half_step"}),
        ("0", {"rating_range", "rating_half_step"}),
        ("5.5", {"rating_range", "rating_half_step"}),
        ("3.7", {"rating_half_step"}),
        ("", {"rating_not_null"}),
        ("four", {"rating_type"}),
        ("nan", {"rating_type"}),
        ("3,5", None),  # an unquoted decimal comma is an extra field
    ],
)
def test_bad_ratings(tmp_path, value, checks):
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", f"1,2,{value},1000000000", "1,3,4.0,1000000000"))
    if checks is None:
        rejected(outcome, "column_count")
        return
    assert set(outcome.checks) == checks, outcome.failures
    for failure in outcome.failures:
        assert failure.examples[0]["line"] == 3


def test_out_of_range_rating_example_value(tmp_path):
    failure = rejected(check(tmp_path, ratings("1,1,4.0,1000000000", "1,2,7.5,1000000000")), "rating_range")
    assert failure.examples == [{"line": 3, "value": "7.5"}]


@pytest.mark.parametrize(
    "row, name",
    [
        ("abc,1,4.0,1000000000", "userId_type"),
        ("1,x7,4.0,1000000000", "movieId_type"),
        ("1.5,1,4.0,1000000000", "userId_type"),
        ("0x10,1,4.0,1000000000", "userId_type"),
        (" 5,1,4.0,1000000000", "userId_type"),
        ("+5,1,4.0,1000000000", "userId_type"),
        ("1,-5,4.0,1000000000", "movieId_range"),
        ("0,1,4.0,1000000000", "userId_range"),
        ("2147483648,1,4.0,1000000000", "userId_range"),
        ("99999999999999999999,1,4.0,1000000000", "userId_type"),
        (",1,4.0,1000000000", "userId_not_null"),
        ("1,,4.0,1000000000", "movieId_not_null"),
        ("1,1,4.0,", "timestamp_not_null"),
        ("1,1,4.0,2024-01-01", "timestamp_type"),
    ],
)
def test_bad_ids_and_types(tmp_path, row, name):
    outcome = check(tmp_path, ratings("7,7,4.0,1000000000", row))
    failure = rejected(outcome, name)
    assert failure.examples[0]["line"] == 3
    assert outcome.checks == [name], outcome.failures
    if name.endswith("_type"):
        assert failure.examples[0]["value"] == row.split(",")[0 if name.startswith("user") else 1 if name.startswith("movie") else 3]


def test_mistyped_value_report_shows_the_raw_text(tmp_path):
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", "abc,2,4.0,1000000000", "2,2,4.0,1000000000", "x y,3,4.0,1000000000"))
    failure = rejected(outcome, "userId_type")
    assert failure.examples == [{"line": 3, "value": "abc"}, {"line": 5, "value": "x y"}]
    assert any("strict parser" in n for n in outcome.notes)


def test_duplicate_user_movie_pairs(tmp_path):
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", "1,2,4.0,1000000000", "2,1,4.0,1000000000", "1,1,3.0,1000000001"))
    failure = rejected(outcome, "user_movie_unique")
    assert failure.examples == [{"line": 2, "value": "userId=1, movieId=1"}, {"line": 5, "value": "userId=1, movieId=1"}]
    assert failure.message.startswith("2 rows share")


def test_future_timestamp(tmp_path):
    ok = check(tmp_path, ratings(f"1,1,4.0,{END_OF_RUN_DATE}"))
    assert ok.passed, ok.failures  # the last second of the run date is still fine
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", f"1,2,4.0,{END_OF_RUN_DATE + 1}"))
    failure = rejected(outcome, "timestamp_range")
    assert failure.examples == [{"line": 3, "value": str(END_OF_RUN_DATE + 1)}]
    assert "2024-06-30T23:59:59Z" in failure.message
    # the same row is fine for a later run date: the bound is a run-time parameter
    assert check(tmp_path, ratings(f"1,2,4.0,{END_OF_RUN_DATE + 1}"), run_date=dt.date(2024, 7, 1)).passed


def test_timestamp_before_1995(tmp_path):
    outcome = check(tmp_path, ratings("1,1,4.0,788918399", "1,2,4.0,788918400"))
    failure = rejected(outcome, "timestamp_range")
    assert lines_of(failure) == [2]


def test_unknown_movie_ids(tmp_path):
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", "1,99,4.0,1000000000", "1,2,4.0,1000000000"), known_movie_ids={1, 2})
    failure = rejected(outcome, "movie_id_known")
    assert failure.examples == [{"line": 3, "value": "99"}]


def test_a_stray_unknown_movie_id_is_tolerated_with_a_note(tmp_path):
    # The shape of the shared ml-latest-small ratings.csv: one appended row with an unknown movieId and
    # no line break after it. Within mostly=0.999 the file passes, and the note names the row.
    rows = [f"{u},{m},4.0,1000000000" for u in range(1, 51) for m in range(1, 41)]  # 2,000 rows
    content = RATINGS_HEADER + "\n".join(rows) + "\n999,999999,5.0,1000000000"
    outcome = check(tmp_path, content, known_movie_ids=set(range(1, 41)))
    assert outcome.passed, outcome.failures
    assert any("movie_id_known: 1 of 2001" in n and "line 2002: '999999'" in n for n in outcome.notes)
    assert any("no line break after the last line" in n for n in outcome.notes)


def test_the_mostly_message_gives_the_share_needed_and_the_share_found_unrounded(tmp_path):
    # 3 unknown of 2,003: 99.85 % known, short of mostly=0.999 (99.9 %), and must not read as "needs 100%".
    rows = [f"{u},{m},4.0,1000000000" for u in range(1, 51) for m in range(1, 41)] + [f"7,{900 + k},4.0,1000000000" for k in range(3)]
    outcome = check(tmp_path, RATINGS_HEADER + "\n".join(rows) + "\n", known_movie_ids=set(range(1, 41)))
    message = rejected(outcome, "movie_id_known").message
    assert "3 of 2003 values of movieId" in message and "mostly=0.999 needs 99.9% to pass, 99.85% do" in message, message


def test_unknown_movie_ids_in_tags(tmp_path):
    outcome = check(tmp_path, TAGS_HEADER + f"1,1,fun,{TS}\n1,42,fun,{TS}\n", "tags", known_movie_ids={1})
    assert lines_of(rejected(outcome, "movie_id_known")) == [3]


def test_many_failures_in_one_file(tmp_path):
    outcome = check(tmp_path, ratings("1,1,9.0,1000000000", "0,2,4.0,1000000000", "1,1,4.0,1", "1,3,4.0"))
    assert {"rating_range", "userId_range", "timestamp_range", "user_movie_unique", "column_count"} <= set(outcome.checks)


# --- movies, tags, links rows --------------------------------------------------------------------


def test_duplicate_movie_ids(tmp_path):
    content = MOVIES_HEADER + "1,Toy Story (1995),Comedy\n2,Heat (1995),Action\n1,Toy Story (1995),Comedy\n"
    failure = rejected(check(tmp_path, content, "movies"), "movieId_unique")
    assert lines_of(failure) == [2, 4]


def test_the_older_releases_genre_names_are_accepted(tmp_path):
    """ml-100k, ml-1m and ml-10m name genres Children's and unknown: accepted (silver normalises them)."""
    content = MOVIES_HEADER + "1,Toy Story (1995),Animation|Children's|Comedy\n2,Lost (1996),unknown\n"
    outcome = check(tmp_path, content, "movies")
    assert outcome.passed, outcome.failures


@pytest.mark.parametrize("genres", ["Comedy|Romcom", "comedy", "Comedy,Drama", "Comedy||Drama", "Comedy|", "(no genres)",
                                    "Childrens", "Unknown"])
def test_unknown_genres(tmp_path, genres):
    value = f'"{genres}"' if "," in genres else genres
    content = MOVIES_HEADER + f"1,Toy Story (1995),Comedy\n2,Heat (1995),{value}\n"
    failure = rejected(check(tmp_path, content, "movies"), "genres_known")
    assert failure.examples == [{"line": 3, "value": genres}]


def test_empty_genres_is_null(tmp_path):
    rejected(check(tmp_path, MOVIES_HEADER + "1,Toy Story (1995),\n", "movies"), "genres_not_null")


def test_titles_without_year_beyond_mostly(tmp_path):
    rows = [f"{i},Movie {i} ({1990 + i})," + "Drama" for i in range(1, 8)] + [f"{i},Movie {i}," + "Drama" for i in range(8, 11)]
    outcome = check(tmp_path, MOVIES_HEADER + "".join(r + "\n" for r in rows), "movies")
    failure = rejected(outcome, "title_year_format")
    assert lines_of(failure) == [9, 10, 11]
    assert "mostly=0.95" in failure.message


def test_a_few_titles_without_year_are_tolerated(tmp_path):
    rows = [f"{i},Movie {i} (1999),Drama" for i in range(1, 40)] + ["40,Babylon 5,Sci-Fi"]
    outcome = check(tmp_path, MOVIES_HEADER + "".join(r + "\n" for r in rows), "movies")
    assert outcome.passed, outcome.failures
    assert any("title_year_format: 1 of 40" in n and "Babylon 5" in n for n in outcome.notes)


def test_empty_tag(tmp_path):
    failure = rejected(check(tmp_path, TAGS_HEADER + f"1,1,fun,{TS}\n1,2,,{TS}\n", "tags"), "tag_not_null")
    assert lines_of(failure) == [3]


def test_links_checks(tmp_path):
    assert "imdbId_not_null" in check(tmp_path, LINKS_HEADER + "1,,862\n", "links").checks
    assert "tmdbId_type" in check(tmp_path, LINKS_HEADER + "1,0114709,abc\n", "links").checks
    assert "movieId_unique" in check(tmp_path, LINKS_HEADER + "1,0114709,862\n1,0114709,862\n", "links").checks


# --- streaming: many batches, line numbers, GX cross-check ----------------------------------------


@pytest.fixture
def validation_tiny_blocks(monkeypatch):
    """Blocks of 1 KiB and GX on the first 50 rows: a small file streams as many batches."""
    import movielens.validation.runner as runner

    monkeypatch.setattr(runner, "BLOCK_SIZE", 1024)
    return runner


def test_line_numbers_survive_bad_lines_blank_lines_and_batches(tmp_path, validation_tiny_blocks):
    rows = [f"{u},{m},4.0,{TS}" for u in range(1, 101) for m in range(1, 11)]  # 1000 rows, ~21 bytes each
    rows[2] = "1,3"  # line 4: wrong field count
    rows.insert(5, "")  # line 7: blank
    rows[700] = f"70,10,9.5,{TS}"  # line 702
    rows[900] = f"90,1,4.0,{TS}"  # line 902 repeats (90, 1) of line 893
    content = RATINGS_HEADER + "\n".join(rows) + "\n"
    outcome = validate_file(write(tmp_path, content, "ratings.csv"), "ratings", RUN_DATE, gx_rows=50)
    lines = content.split("\n")
    assert lines_of(rejected(outcome, "column_count")) == [4]
    assert lines_of(rejected(outcome, "blank_line")) == [7]
    range_failure = rejected(outcome, "rating_range")
    assert lines_of(range_failure) == [702] and lines[701] == f"70,10,9.5,{TS}"
    dup = rejected(outcome, "user_movie_unique")
    assert lines_of(dup) == [893, 902]
    assert [lines[n - 1].split(",")[:2] for n in lines_of(dup)] == [["90", "1"], ["90", "1"]]
    assert outcome.gx_summary["gx_rows"] == 50 and not outcome.gx_summary["gx_covers_file"]


def test_duplicates_far_apart_in_different_batches(tmp_path, validation_tiny_blocks):
    rows = [f"{u},{m},4.0,{TS}" for u in range(1, 201) for m in range(1, 6)]
    rows.append(f"1,1,2.0,{TS}")
    outcome = validate_file(write(tmp_path, RATINGS_HEADER + "\n".join(rows) + "\n"), "ratings", RUN_DATE)
    assert lines_of(rejected(outcome, "user_movie_unique")) == [2, 1002]


def test_strict_parse_line_numbers_in_many_batches(tmp_path, validation_tiny_blocks):
    rows = [f"{i},Movie {i} (1999),Drama" for i in range(1, 301)]
    rows[250] = "251,Movie 251 (1999),Dramedy"
    outcome = check(tmp_path, MOVIES_HEADER + "\n".join(rows) + "\n", "movies")
    assert rejected(outcome, "genres_known").examples == [{"line": 252, "value": "Dramedy"}]


def test_gx_on_every_row_agrees(tmp_path):
    content = ratings("1,1,9.0,1000000000", "abc,2,4.0,1000000000", "1,1,4.0,1000000000", "2,2,3.7,5")
    default = check(tmp_path, content)
    everything = validate_file(write(tmp_path, content, "ratings.csv"), "ratings", RUN_DATE, gx_rows=None)
    assert default.checks == everything.checks
    assert GX_DISAGREEMENT not in everything.checks
    results = {r["check"]: r for r in everything.gx_summary["results"]}
    assert results["rating_range"]["gx"]["unexpected_count"] == results["rating_range"]["unexpected_count"] == 1
    assert results["userId_type"]["gx"]["unexpected_count"] == 1


def test_gx_results_match_the_evaluator_on_a_bad_file(tmp_path):
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", "1,2,3.7,1000000000", "1,2,7.0,2000000000000"))
    for r in outcome.gx_summary["results"]:
        if r["unexpected_count"] is not None and r["gx"]["unexpected_count"] is not None:
            assert r["gx"]["unexpected_count"] == r["unexpected_count"], r
        assert r["gx"]["success"] == r["success"], r


def test_disagreement_between_gx_and_the_evaluator_rejects(tmp_path, monkeypatch):
    from movielens.validation.evaluator import StreamingEvaluator

    real = StreamingEvaluator._map

    def blind_to_ranges(self, t, column, n):
        mask, missing = real(self, t, column, n)
        return (mask & False, missing) if t.check == "rating_range" else (mask, missing)

    monkeypatch.setattr(StreamingEvaluator, "_map", blind_to_ranges)
    outcome = check(tmp_path, ratings("1,1,4.0,1000000000", "1,2,9.0,1000000000"))
    failure = rejected(outcome, GX_DISAGREEMENT)
    assert "rating_range" in failure.message


def test_large_known_movie_id_sets_stay_fast_in_gx(tmp_path):
    rows = [f"1,{m},4.0,{TS}" for m in range(1, 3001)] + [f"2,{m},4.0,{TS}" for m in range(1, 3001)]
    outcome = validate_file(
        write(tmp_path, RATINGS_HEADER + "\n".join(rows) + "\n2,5000,4.0,1000000000\n"), "ratings", RUN_DATE,
        known_movie_ids=set(range(1, 200_001)),
    )
    assert outcome.passed, outcome.failures
    gx = {r["check"]: r["gx"] for r in outcome.gx_summary["results"]}["movie_id_known"]
    assert gx["success"] and 0 < gx["rows"] < 6001


# --- the real ml-latest-small, when the shared copy is there --------------------------------------

SHARED = Path(__file__).resolve().parents[3] / "shared" / "movielens" / "ml-latest-small"


@pytest.mark.skipif(not SHARED.exists(), reason="no shared ml-latest-small")
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_ml_latest_small(kind):
    outcome = validate_file(SHARED / f"{kind}.csv", kind, RUN_DATE)
    assert outcome.passed, outcome.failures
    assert outcome.gx_summary["gx_disagreements"] == 0


# --- chunk boundaries: the byte checks see the file in pieces of any size ------------------------


class _TrickleFile(io.BytesIO):
    """A stream that returns at most ``step`` bytes per read, like a slow network stream."""

    def __init__(self, data: bytes, step: int):
        super().__init__(data)
        self.step = step

    def read(self, size=-1):
        return super().read(self.step if size is None or size < 0 else min(size, self.step))


class _TricklePath:
    def __init__(self, name: str, data: bytes, step: int):
        self.name, self.data, self.step = name, data, step

    def open(self, mode):
        return _TrickleFile(self.data, self.step)


BOUNDARY_CASES = {
    "crlf_bom": ("ratings", ("\ufeff" + GOOD["ratings"].replace("\n", "\r\n")).encode()),
    "crlf_blank_end": ("ratings", (GOOD["ratings"] + "\n\n").replace("\n", "\r\n").encode()),
    "utf8_titles": ("movies", (MOVIES_HEADER + "1,Amélie (2001),Comedy|Romance\n2,Léon (1994),Crime\n3,東京物語 (1953),Drama\n").encode()),
    "quoted": ("movies", GOOD["movies"].encode()),
    "latin1": ("movies", (MOVIES_HEADER + "1,Toy Story (1995),Comedy\n2,Amélie (2001),Comedy\n").encode("latin-1")),
    "blank_mid": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\n\r\n1,2,4.0,1000000000\n").encode()),
    "unbalanced": ("movies", (MOVIES_HEADER + '1,Toy Story (1995),Comedy\n2,"Heat (1995),Action\n3,Up (2009),Drama\n').encode()),
    "spanning": ("movies", (MOVIES_HEADER + '1,"Toy\nStory (1995)",Comedy\n2,Heat (1995),Action\n').encode()),
    "stray_cr": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\r1,2,4.0,1000000000\n").encode()),
    "cr_at_end": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\r").encode()),
    "truncated": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\r\n1,2,4").encode()),
    "nul": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\n1,2,\x004.0,1000000000\n").encode()),
    "bad_values": ("ratings", (RATINGS_HEADER + "1,1,4.0,1000000000\n1,2,7.0,1000000000\nx,3,4.0,1000000000\n").encode()),
}


@pytest.mark.parametrize("case", sorted(BOUNDARY_CASES))
def test_same_verdict_whatever_the_read_size(tmp_path, case):
    kind, data = BOUNDARY_CASES[case]
    whole = validate_file(write(tmp_path, data, f"{kind}.csv"), kind, RUN_DATE)
    for step in (1, 2, 3, 5, 7):
        pieces = validate_file(_TricklePath(f"{kind}.csv", data, step), kind, RUN_DATE)
        assert (pieces.passed, pieces.rows, pieces.checks) == (whole.passed, whole.rows, whole.checks), step
        assert [f.examples for f in pieces.failures] == [f.examples for f in whole.failures], step
        assert [f.message for f in pieces.failures] == [f.message for f in whole.failures], step
        assert pieces.notes == whole.notes, step
    expected_pass = case in ("crlf_bom", "crlf_blank_end", "utf8_titles", "quoted")
    assert whole.passed is expected_pass, whole.failures
