"""GroupLens releases: downloads against a real local HTTP server, and conversion of the legacy layouts."""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from movielens.ingest import datasets
from tests.servers import free_port

LATEST_RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
LATEST_MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '3,"American President, The (1995)",Comedy|Drama|Romance\n'
)


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


class Server:
    """A real HTTP server on 127.0.0.1 (free port) serving ``files``; records every path requested."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.requests.append(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/movielens"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def publish(self, name: str, data: bytes, md5_text: str | None = None) -> None:
        """Serve ``<name>.zip`` and, as GroupLens does, ``<name>.zip.md5`` beside it."""
        md5 = hashlib.md5(data).hexdigest()
        self.files[f"/datasets/movielens/{name}.zip"] = data
        self.files[f"/datasets/movielens/{name}.zip.md5"] = (md5_text or f"MD5 ({name}.zip) = {md5}\n").encode()


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def latest_zip() -> bytes:
    return make_zip({
        "ml-latest-small/ratings.csv": LATEST_RATINGS,
        "ml-latest-small/movies.csv": LATEST_MOVIES,
        "ml-latest-small/README.txt": "Summary\n",
    })  # fmt: skip


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# --- downloads ----------------------------------------------------------------------------------


def test_download_verifies_extracts_and_caches(tmp_path, server, latest_zip):
    server.publish("ml-latest-small", latest_zip)
    cache = tmp_path / "cache"
    folder = datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False)
    assert folder == cache / "ml-latest-small" / "ml-latest-small"
    assert (folder / "ratings.csv").read_text() == LATEST_RATINGS
    assert (folder / "movies.csv").read_text() == LATEST_MOVIES
    assert server.requests == ["/datasets/movielens/ml-latest-small.zip.md5", "/datasets/movielens/ml-latest-small.zip"]
    assert (cache / "ml-latest-small.zip").read_bytes() == latest_zip
    assert not list(cache.glob(".*")), "no partial download or extraction left behind"

    again = datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False)
    assert again == folder and len(server.requests) == 2, "a verified cached zip is not downloaded again"

    # The extracted folder is rebuilt from the cached zip, still without the network.
    shutil.rmtree(cache / "ml-latest-small")
    assert datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False) == folder
    assert (folder / "ratings.csv").read_text() == LATEST_RATINGS and len(server.requests) == 2


def test_a_tampered_cached_zip_is_downloaded_again(tmp_path, server, latest_zip):
    server.publish("ml-latest-small", latest_zip)
    cache = tmp_path / "cache"
    datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False)
    (cache / "ml-latest-small.zip").write_bytes(b"truncated")
    folder = datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False)
    assert len(server.requests) == 4 and (cache / "ml-latest-small.zip").read_bytes() == latest_zip
    assert (folder / "ratings.csv").read_text() == LATEST_RATINGS


@pytest.mark.parametrize(
    "text",
    ["{md5}  ml-latest-small.zip\n", "MD5 (ml-latest-small.zip) = {md5}\n", "{md5}", "{MD5}\r\n"],
)
def test_checksum_file_formats(tmp_path, server, latest_zip, text):
    md5 = hashlib.md5(latest_zip).hexdigest()
    server.publish("ml-latest-small", latest_zip, md5_text=text.format(md5=md5, MD5=md5.upper()))
    folder = datasets.download_release("ml-latest-small", tmp_path, base_url=server.url, progress=False)
    assert (folder / "ratings.csv").is_file()
    assert datasets.parse_md5(text.format(md5=md5, MD5=md5.upper())) == md5
    assert datasets.parse_md5("<html>not found</html>") is None


def test_checksum_mismatch_deletes_the_download(tmp_path, server, latest_zip):
    wrong = "0123456789abcdef" * 2
    server.publish("ml-latest-small", latest_zip, md5_text=f"{wrong}  ml-latest-small.zip\n")
    cache = tmp_path / "cache"
    with pytest.raises(datasets.ChecksumMismatch) as caught:
        datasets.download_release("ml-latest-small", cache, base_url=server.url, progress=False)
    message = str(caught.value)
    assert hashlib.md5(latest_zip).hexdigest() in message and wrong in message and "\n" not in message
    assert f"{server.url}/ml-latest-small.zip" in message
    assert list(cache.iterdir()) == [], "the partial download is removed"


def test_unreachable_host_names_the_url_and_the_reason(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/datasets/movielens"
    with pytest.raises(datasets.DownloadUnavailable) as caught:
        datasets.download_release("ml-latest-small", tmp_path, base_url=url, progress=False, timeout=5)
    message = str(caught.value)
    assert message.startswith(f"cannot download {url}/ml-latest-small.zip.md5: ")
    assert "refused" in message.lower() and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_missing_release_on_the_server_is_unavailable(tmp_path, server):
    with pytest.raises(datasets.DownloadUnavailable, match=r"ml-25m\.zip\.md5: HTTP 404"):
        datasets.download_release("ml-25m", tmp_path, base_url=server.url, progress=False)
    server.files["/datasets/movielens/ml-25m.zip.md5"] = b"<html>moved</html>"
    with pytest.raises(datasets.DownloadUnavailable, match="no MD5 checksum"):
        datasets.download_release("ml-25m", tmp_path, base_url=server.url, progress=False)


def test_unknown_release_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown MovieLens release 'ml-2m'.*ml-latest-small"):
        datasets.download_release("ml-2m", tmp_path)


def test_progress_is_reported_on_stderr(tmp_path, server, latest_zip, capsys):
    server.publish("ml-latest-small", latest_zip)
    datasets.download_release("ml-latest-small", tmp_path / "a", base_url=server.url, progress=True)
    err = capsys.readouterr().err
    assert "ml-latest-small.zip" in err and "100.0%" in err and "/s" in err
    assert f"{len(latest_zip)} B / {len(latest_zip)} B" in err
    datasets.download_release("ml-latest-small", tmp_path / "b", base_url=server.url, progress=False)
    assert capsys.readouterr().err == ""


def test_releases_and_urls():
    assert {"ml-latest-small", "ml-25m", "ml-32m", "ml-100k", "ml-1m", "ml-10m"} <= set(datasets.RELEASES)
    assert datasets.DEFAULT_RELEASE == "ml-latest-small"
    small = datasets.RELEASES["ml-latest-small"]
    assert small.url() == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    assert small.md5_url() == small.url() + ".md5"
    assert [n for n, r in datasets.RELEASES.items() if r.legacy] == ["ml-100k", "ml-1m", "ml-10m"]


def test_release_folder_converts_a_legacy_release(tmp_path, server):
    movies = (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
    )
    files = {
        "ml-1m/ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n",
        "ml-1m/movies.dat": movies.encode("latin-1"),
        "ml-1m/users.dat": "1::F::1::10::48067\n",
    }
    server.publish("ml-1m", make_zip(files))
    folder = datasets.release_folder("ml-1m", tmp_path, base_url=server.url, progress=False)
    assert folder == tmp_path / "converted" / "ml-1m"
    assert read_csv(folder / "ratings.csv")[1:] == [["1", "1193", "5.0", "978300760"], ["1", "661", "3.0", "978302109"]]
    assert read_csv(folder / "movies.csv")[2] == [
        "661",
        "James and the Giant Peach (1996)",
        "Animation|Children|Musical",
    ]
    assert datasets.release_folder("ml-1m", tmp_path, base_url=server.url, progress=False) == folder
    assert len(server.requests) == 2


def test_release_folder_of_a_csv_release_is_the_extracted_folder(tmp_path, server, latest_zip):
    server.publish("ml-latest-small", latest_zip)
    folder = datasets.release_folder("ml-latest-small", tmp_path, base_url=server.url, progress=False)
    assert (folder / "movies.csv").read_text() == LATEST_MOVIES and not (tmp_path / "converted").exists()


# --- legacy conversion --------------------------------------------------------------------------


def ml100k_item(movie_id: int, title: str, genres: set[str]) -> str:
    flags = ["1" if g in genres else "0" for g in datasets.ML100K_GENRES]
    return "|".join([str(movie_id), title, "01-Jan-1995", "", "http://us.imdb.com/M/title-exact?x"] + flags)


def test_convert_ml100k(tmp_path):
    src = tmp_path / "ml-100k"
    src.mkdir()
    (src / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    items = [
        ml100k_item(1, "Toy Story (1995)", {"Animation", "Children's", "Comedy"}),
        ml100k_item(242, "Kolya (1996)", {"Comedy"}),
        ml100k_item(302, "L.A. Confidential (1997)", {"Crime", "Film-Noir", "Mystery", "Thriller"}),
        ml100k_item(377, "Á köldum klaka (Cold Fever) (1994)", {"Comedy", "Drama"}),
        ml100k_item(267, "unknown", {"unknown"}),
        ml100k_item(1300, "Brothers McMullen, The (1995)", set()),
    ]
    (src / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (src / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(datasets.ML100K_GENRES)) + "\n")
    (src / "u.user").write_text("1|24|M|technician|85711\n")

    out = datasets.convert_legacy(src, tmp_path / "out")
    assert out == tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["movies.csv", "ratings.csv"]
    assert read_csv(out / "ratings.csv") == [
        ["userId", "movieId", "rating", "timestamp"],
        ["196", "242", "3.0", "881250949"], ["186", "302", "3.0", "891717742"], ["22", "377", "1.0", "878887116"],
    ]  # fmt: skip
    assert read_csv(out / "movies.csv") == [
        ["movieId", "title", "genres"],
        ["1", "Toy Story (1995)", "Animation|Children|Comedy"],
        ["242", "Kolya (1996)", "Comedy"],
        ["302", "L.A. Confidential (1997)", "Crime|Film-Noir|Mystery|Thriller"],
        ["377", "Á köldum klaka (Cold Fever) (1994)", "Comedy|Drama"],
        ["267", "unknown", "(no genres listed)"],
        ["1300", "Brothers McMullen, The (1995)", "(no genres listed)"],
    ]
    text = (out / "movies.csv").read_text(encoding="utf-8")
    assert '1300,"Brothers McMullen, The (1995)",(no genres listed)\n' in text and "\r" not in text


def test_convert_ml1m_latin1(tmp_path):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1193::5::978300760\n1::3114::4::978302174\n\n")
    (src / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "73::Misérables, Les (1995)::Drama|Musical\n"
        "3114::Toy Story 2 (1999)::Animation|Children's|Comedy\n".encode("latin-1")
    )
    out = datasets.convert_legacy(src, tmp_path / "out")
    assert read_csv(out / "ratings.csv")[1:] == [["1", "1193", "5.0", "978300760"], ["1", "3114", "4.0", "978302174"]]
    assert read_csv(out / "movies.csv")[1:] == [
        ["1", "Toy Story (1995)", "Animation|Children|Comedy"],
        ["73", "Misérables, Les (1995)", "Drama|Musical"],
        ["3114", "Toy Story 2 (1999)", "Animation|Children|Comedy"],
    ]
    assert '73,"Misérables, Les (1995)",Drama|Musical' in (out / "movies.csv").read_text(encoding="utf-8")
    assert not (out / "tags.csv").exists()


def test_convert_ml10m_utf8_half_stars_and_tags(tmp_path):
    src = tmp_path / "ml-10M100K"
    src.mkdir()
    (src / "ratings.dat").write_text("1::122::5::838985046\n7::4973::4.5::1049764915\n")
    (src / "movies.dat").write_bytes(
        "4973::Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
        "122::Boomerang (1992)::Comedy|Romance\n"
        "65133::Blackadder Back & Forth (1999)::(no genres listed)\n".encode("utf-8")
    )
    (src / "tags.dat").write_text(
        '15::4973::excellent!::1215184630\n15::122::funny, "sad"::1215184631\n20::4973::a::b::1215184632\n',
        encoding="utf-8",
    )
    out = datasets.convert_legacy(src, tmp_path / "out")
    assert read_csv(out / "ratings.csv")[2] == ["7", "4973", "4.5", "1049764915"]
    assert read_csv(out / "movies.csv")[1] == [
        "4973",
        "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
        "Comedy|Romance",
    ]
    assert read_csv(out / "movies.csv")[3] == ["65133", "Blackadder Back & Forth (1999)", "(no genres listed)"]
    assert read_csv(out / "tags.csv") == [
        ["userId", "movieId", "tag", "timestamp"],
        ["15", "4973", "excellent!", "1215184630"],
        ["15", "122", 'funny, "sad"', "1215184631"],
        ["20", "4973", "a::b", "1215184632"],
    ]
    assert '15,122,"funny, ""sad""",1215184631' in (out / "tags.csv").read_text(encoding="utf-8")


def test_a_zip_root_holding_the_release_folder_is_accepted(tmp_path):
    src = tmp_path / "extracted" / "ml-1m"
    src.mkdir(parents=True)
    (src / "ratings.dat").write_text("1::1::5::978300760\n")
    (src / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    out = datasets.convert_legacy(tmp_path / "extracted", tmp_path / "out")
    assert read_csv(out / "movies.csv")[1] == ["1", "Toy Story (1995)", "Comedy"]


def test_conversion_is_reused_until_the_source_changes(tmp_path):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1::5::978300760\n")
    (src / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    out = datasets.convert_legacy(src, tmp_path / "out")
    first = (out / "ratings.csv").stat().st_mtime_ns
    assert datasets.convert_legacy(src, tmp_path / "out") == out
    assert (out / "ratings.csv").stat().st_mtime_ns == first, "not converted twice"
    (src / "ratings.dat").write_text("1::1::5::978300760\n2::1::3::978300761\n")
    datasets.convert_legacy(src, tmp_path / "out")
    assert len(read_csv(out / "ratings.csv")) == 3


def test_a_csv_folder_is_returned_unchanged(tmp_path):
    (tmp_path / "ratings.csv").write_text(LATEST_RATINGS)
    (tmp_path / "movies.csv").write_text(LATEST_MOVIES)
    assert datasets.convert_legacy(tmp_path, tmp_path / "out") == tmp_path
    assert not (tmp_path / "out").exists()


def test_unknown_layout_names_what_was_found(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"unknown MovieLens layout in .*\['data\.parquet', 'notes\.txt'\]"):
        datasets.convert_legacy(tmp_path, tmp_path / "out")


def test_a_bad_line_is_reported_with_its_number(tmp_path):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1::5::978300760\n1::2::five::978300760\n")
    (src / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n2::Jumanji (1995)::Adventure\n")
    with pytest.raises(ValueError, match=r"ratings\.dat:2: expected UserID::MovieID::Rating::Timestamp"):
        datasets.convert_legacy(src, tmp_path / "out")
    assert not (tmp_path / "out" / "ratings.csv").exists(), "no half-written output"


def test_command_line(tmp_path, server, latest_zip, capsys):
    server.publish("ml-latest-small", latest_zip)
    datasets.main(
        ["download", "ml-latest-small", "--cache", str(tmp_path / "c"), "--base-url", server.url, "--no-progress"]
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "c" / "ml-latest-small" / "ml-latest-small")

    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1::5::978300760\n")
    (src / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    done = subprocess.run(
        [sys.executable, "-m", "movielens.ingest.datasets", "convert", str(src), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "out"), done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "movielens.ingest.datasets", "download", "ml-latest-small", "--cache", str(tmp_path / "d"),
         "--base-url", f"http://127.0.0.1:{free_port()}", "--no-progress"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: cannot download http://127.0.0.1:")
    assert bad.stderr.count("\n") == 1
