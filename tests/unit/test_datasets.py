"""GroupLens downloads against a real local HTTP server, and legacy layout conversion."""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from movielens import datasets
from movielens.notify.mailbox import free_port


@pytest.fixture
def grouplens(tmp_path):
    """A local HTTP server with ml-latest-small.zip and its .md5; records the paths requested."""
    root = tmp_path / "www"
    root.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
        zipped.writestr("ml-latest-small/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    data = buffer.getvalue()
    (root / "ml-latest-small.zip").write_bytes(data)
    (root / "ml-latest-small.zip.md5").write_text(f"{hashlib.md5(data).hexdigest()}  ml-latest-small.zip\n")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    server.shutdown()


def test_download_verifies_and_caches(tmp_path, grouplens):
    url, _, requests = grouplens
    folder = datasets.release_folder("ml-latest-small", tmp_path / "cache", base_url=url, progress=False)
    assert (folder / "ratings.csv").read_text().startswith("userId,movieId")
    assert "/ml-latest-small.zip" in requests and "/ml-latest-small.zip.md5" in requests
    count = len(requests)
    again = datasets.release_folder("ml-latest-small", tmp_path / "cache", base_url=url, progress=False)
    assert again == folder and len(requests) == count, "a verified cached zip is not downloaded again"


def test_checksum_mismatch_removes_download(tmp_path, grouplens):
    url, root, _ = grouplens
    (root / "ml-latest-small.zip.md5").write_text("0" * 32 + "  ml-latest-small.zip\n")
    with pytest.raises(datasets.ChecksumMismatch, match="does not match"):
        datasets.download_release("ml-latest-small", tmp_path / "cache", base_url=url, progress=False)
    assert not list((tmp_path / "cache").glob("*.zip*"))


def test_unreachable_host_says_which_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(datasets.DownloadUnavailable, match=r"cannot download http://127\.0\.0\.1:\d+/ml-latest-small\.zip"):
        datasets.download_release("ml-latest-small", tmp_path, base_url=url, progress=False, timeout=5)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_convert_ml100k(tmp_path):
    src = tmp_path / "ml-100k"
    src.mkdir()
    (src / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags = ["0"] * 19
    flags[3] = flags[4] = "1"  # Animation, Children's
    item = "|".join(["1", "Am\xe9lie, Le Fabuleux (2001)", "01-Jan-2001", "", "http://x"] + flags)
    (src / "u.item").write_bytes((item + "\n" + "|".join(["2", "Odd (1999)", "", "", ""] + ["0"] * 19) + "\n").encode("latin-1"))
    out = datasets.convert_legacy(src, tmp_path / "out")
    assert read_csv(out / "ratings.csv") == [["userId", "movieId", "rating", "timestamp"], ["196", "242", "3.0", "881250949"], ["186", "302", "3.0", "891717742"]]
    movies = read_csv(out / "movies.csv")
    assert movies[1] == ["1", "Am\xe9lie, Le Fabuleux (2001)", "Animation|Children"]
    assert movies[2] == ["2", "Odd (1999)", "(no genres listed)"]
    assert '"Am\xe9lie, Le Fabuleux (2001)"' in (out / "movies.csv").read_text(encoding="utf-8")


def test_convert_ml1m(tmp_path):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text("1::1193::5::978300760\n")
    (src / "movies.dat").write_bytes("1::Toy Story (1995)::Animation|Children's|Comedy\n2::Caf\xe9 (1999)::Drama\n".encode("latin-1"))
    out = datasets.convert_legacy(src, tmp_path / "out")
    assert read_csv(out / "ratings.csv")[1] == ["1", "1193", "5.0", "978300760"]
    assert read_csv(out / "movies.csv")[1:] == [["1", "Toy Story (1995)", "Animation|Children|Comedy"], ["2", "Caf\xe9 (1999)", "Drama"]]


def test_unknown_layout_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a MovieLens folder"):
        datasets.convert_legacy(tmp_path, tmp_path / "out")
