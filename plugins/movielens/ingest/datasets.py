"""Real MovieLens releases as a local folder of CSV files in the ml-latest layout.

- ``download_release``: fetch ``<name>.zip`` from GroupLens (or a mirror), verify it against the MD5
  published beside it (``<name>.zip.md5``), cache it and extract it. A second call with the verified zip
  in the cache does not touch the network.
- ``convert_legacy``: turn the older layouts (ml-100k ``u.data``/``u.item``; ml-1m and ml-10m
  ``::``-separated ``.dat`` files) into ``ratings.csv``/``movies.csv`` (+ ``tags.csv``), streaming
  line by line so that ml-10m's 10 M ratings need no memory to speak of.
- ``release_folder``: both, giving a folder in the CSV layout whatever the release.

Standard library only: it runs wherever the DAGs run.

Command line::

    python -m movielens.ingest.datasets download ml-latest-small --cache DIR
    python -m movielens.ingest.datasets convert SRC OUT
    python -m movielens.ingest.datasets list
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from spark_jobs.common import layout

BASE_URL = "https://files.grouplens.org/datasets/movielens"
DEFAULT_RELEASE = "ml-latest-small"
NO_GENRES = layout.NO_GENRES


@dataclass(frozen=True)
class Release:
    name: str
    legacy: bool  # True: .dat / u.data files that convert_legacy turns into CSV
    about: str

    def url(self, base_url: str = BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.name}.zip"

    def md5_url(self, base_url: str = BASE_URL) -> str:
        return self.url(base_url) + ".md5"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-latest-small", False, "100 k ratings, 610 users, 9.7 k movies; education and development"),
        Release("ml-25m", False, "25 M ratings, 162 k users, 62 k movies (2019); stable benchmark"),
        Release("ml-32m", False, "32 M ratings, 201 k users, 88 k movies (2023); stable benchmark"),
        Release("ml-latest", False, "every rating to date (33 M+), updated over time; not for reproducible results"),
        Release("ml-100k", True, "100 k ratings, 943 users, 1.7 k movies (1998); legacy u.data layout"),
        Release("ml-1m", True, "1 M ratings, 6 k users, 3.9 k movies (2003); legacy .dat layout"),
        Release("ml-10m", True, "10 M ratings, 72 k users, 10 k movies (2009); legacy .dat layout"),
    )
}


class DatasetError(RuntimeError):
    """Base of this module's errors."""


class DownloadUnavailable(DatasetError):
    """The release could not be fetched (network, HTTP error, no published checksum)."""


class ChecksumMismatch(DatasetError):
    """The downloaded file's MD5 differs from the published one."""


def _release(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"unknown MovieLens release {name!r}; known: {', '.join(RELEASES)}") from None


# --- download ---------------------------------------------------------------------------------------

_CHUNK = 1 << 20
_USER_AGENT = "movielens-platform (python urllib)"
_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")


def parse_md5(text: str) -> str | None:
    """The hex digest in a checksum file: ``<hex>  <file>``, BSD ``MD5 (<file>) = <hex>``, or the hex alone."""
    match = _MD5_RE.search(text)
    return match.group(1).lower() if match else None


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _why(err: BaseException) -> str:
    """A one-line reason for a network error."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError) and isinstance(err.reason, BaseException):
        return _why(err.reason)  # e.g. ConnectionRefusedError inside URLError
    if isinstance(err, urllib.error.URLError):
        return " ".join(str(err.reason).split())
    if isinstance(err, TimeoutError):
        return "timed out"
    return " ".join(str(err).split()) or type(err).__name__


def _open(url: str, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https URLs we build)
    except (OSError, http.client.HTTPException) as err:  # URLError and HTTPError are OSErrors
        raise DownloadUnavailable(f"cannot download {url}: {_why(err)}") from err


def _published_md5(url: str, timeout: float) -> str:
    with _open(url, timeout) as response:
        try:
            text = response.read(4096).decode("ascii", "replace")
        except (OSError, http.client.HTTPException) as err:
            raise DownloadUnavailable(f"cannot download {url}: {_why(err)}") from err
    md5 = parse_md5(text)
    if md5 is None:
        raise DownloadUnavailable(f"cannot download {url}: no MD5 checksum in it ({text.strip()[:60]!r})")
    return md5


class _Progress:
    """Plain-text progress on stderr: bytes done / total, percent, rate.

    On a terminal one line is redrawn at most 4 times a second; elsewhere (logs) a line is printed
    every 10 % (or every 10 s when the size is unknown), so Airflow task logs stay readable.
    """

    def __init__(self, label: str, total: int | None, enabled: bool | None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else enabled
        self.label, self.total = label, total
        self.started = self.last = time.monotonic()
        self.last_step, self.last_done = -1, -1

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if final or now - self.last >= 0.25:
                # Padded so that a shorter line fully covers the previous one.
                self.stream.write("\r" + self._line(done, now).ljust(72) + ("\n" if final else ""))
                self.stream.flush()
                self.last = now
            return
        step = int(10 * done / self.total) if self.total else int((now - self.started) // 10)
        if step > self.last_step or (final and done != self.last_done):
            self.stream.write(self._line(done, now) + "\n")
            self.stream.flush()
            self.last_step, self.last_done = step, done

    def _line(self, done: int, now: float) -> str:
        rate = done / max(now - self.started, 1e-6)
        if self.total:
            return (
                f"{self.label}  {_size(done)} / {_size(self.total)}  {100 * done / self.total:5.1f}%  {_size(rate)}/s"
            )
        return f"{self.label}  {_size(done)}  {_size(rate)}/s"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # unreachable; keeps type checkers calm


def _fetch(url: str, dest_dir: Path, name: str, timeout: float, progress: bool | None) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file in ``dest_dir``; returns (path, md5). Removes it on failure."""
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _Progress(name, total, progress)
            done = 0
            try:
                while block := response.read(_CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    bar.update(done)
            except (OSError, http.client.HTTPException) as err:
                raise DownloadUnavailable(f"cannot download {url}: {_why(err)}") from err
            bar.update(done, final=True)
        if total is not None and done != total:
            raise DownloadUnavailable(f"cannot download {url}: got {done} of {total} bytes")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def download_release(
    name: str = DEFAULT_RELEASE,
    cache_dir: Path = Path("var/cache"),
    *,
    base_url: str = BASE_URL,
    progress: bool | None = True,
    timeout: float = 30,
) -> Path:
    """Download, verify and extract a release; returns the folder holding its data files.

    The zip is cached as ``<cache_dir>/<name>.zip`` with its verified MD5 beside it
    (``<name>.zip.md5``); a later call finds both and re-hashes the zip instead of downloading.
    ``progress``: True shows progress on stderr, False never, None only when stderr is a terminal.
    Raises ``DownloadUnavailable`` (one line naming the URL and the reason) or ``ChecksumMismatch``.
    """
    release = _release(name)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    zip_path = cache_dir / f"{name}.zip"
    md5_path = cache_dir / f"{name}.zip.md5"
    extracted = cache_dir / name

    if not _cached_zip_ok(zip_path, md5_path):
        url = release.url(base_url)
        expected = _published_md5(release.md5_url(base_url), timeout)
        tmp, got = _fetch(url, cache_dir, f"{name}.zip", timeout, progress)
        if got != expected:
            tmp.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{url}: downloaded MD5 {got} does not match the published MD5 {expected}")
        os.replace(tmp, zip_path)
        md5_path.write_text(f"{expected}  {zip_path.name}\n", encoding="ascii")
        shutil.rmtree(extracted, ignore_errors=True)  # a new zip: whatever was extracted before is stale
    if not extracted.is_dir():
        _extract(zip_path, extracted)
    return _data_folder(extracted)


def _cached_zip_ok(zip_path: Path, md5_path: Path) -> bool:
    if not (zip_path.is_file() and md5_path.is_file()):
        return False
    expected = parse_md5(md5_path.read_text(encoding="ascii", errors="replace"))
    return expected is not None and file_md5(zip_path) == expected


def _extract(zip_path: Path, target: Path) -> None:
    """Extract into a temporary folder, then rename it: ``target`` exists only when complete."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extracting-"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            root = tmp.resolve()
            for member in archive.namelist():
                # Refuse members that would land outside the folder ("zip slip").
                if not (root / member).resolve().is_relative_to(root):
                    raise DatasetError(f"{zip_path}: unsafe path in archive: {member!r}")
            archive.extractall(tmp)
        os.replace(tmp, target)
    except zipfile.BadZipFile as err:
        raise DatasetError(f"{zip_path} is not a valid zip file: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- layouts ----------------------------------------------------------------------------------------

_CSV_KINDS = ("ratings", "movies", "tags", "links")


def detect_layout(folder: Path) -> str | None:
    """'csv', 'ml-100k' or 'dat' from the files present in ``folder``, else None."""
    names = {p.name.lower() for p in folder.iterdir() if p.is_file()}
    if any(n.endswith(".csv") and n.startswith(_CSV_KINDS) for n in names):
        return "csv"
    if "u.data" in names:
        return "ml-100k"
    if "ratings.dat" in names:
        return "dat"
    return None


def _data_folder(root: Path) -> Path:
    """``root`` or the subfolder of it (zips hold one, e.g. ``ml-10M100K/``) with MovieLens files."""
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in candidates:
        if detect_layout(folder):
            return folder
    found = sorted(p.name for p in root.rglob("*") if p.is_file())[:10]
    raise ValueError(f"no MovieLens files (ratings.csv, u.data, ratings.dat) in {root}; found: {found}")


# --- legacy conversion ------------------------------------------------------------------------------

# ml-100k's u.genre order: the 19 flags at the end of each u.item line.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Old names to the ml-latest ones (the mapping silver applies too); "unknown" means no genre.
_GENRE_NAMES = {**layout.LEGACY_GENRES, NO_GENRES: None}


def _genres(names: list[str]) -> str:
    mapped = [_GENRE_NAMES.get(n, n) for n in (n.strip() for n in names) if n]
    kept = [n for n in mapped if n]
    return "|".join(kept) if kept else NO_GENRES


def _decode(raw: bytes) -> str:
    """UTF-8 where valid (ml-10m), else Latin-1 (ml-100k, ml-1m): per line, so a mixed file still works."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = _decode(raw).rstrip("\r\n")
            if line.strip():
                yield number, line


def _bad_line(path: Path, number: int, line: str, expected: str) -> ValueError:
    return ValueError(f"{path}:{number}: expected {expected}, got {line[:80]!r}")


def _rating(text: str) -> str:
    return f"{float(text):.1f}"  # "5" and "5.0" both become "5.0", as in ratings.csv


def _int(text: str) -> int:
    return int(text.strip())


def _write_ratings(path: Path, rows: Iterator[tuple[int, int, str, int]]) -> int:
    # Numbers only, so no quoting is needed: plain writes are 3x faster than csv.writer on 10 M rows.
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("userId,movieId,rating,timestamp\n")
        buffer = []
        for user, movie, rating, ts in rows:
            buffer.append(f"{user},{movie},{rating},{ts}\n")
            if len(buffer) >= 100_000:
                out.write("".join(buffer))
                count += len(buffer)
                buffer.clear()
        out.write("".join(buffer))
        count += len(buffer)
    return count


def _write_csv(path: Path, header: tuple[str, ...], rows) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")  # minimal quoting, like MovieLens
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _ml100k_ratings(path: Path) -> Iterator[tuple[int, int, str, int]]:
    for number, line in _lines(path):
        parts = line.split()
        try:
            user, movie, rating, ts = parts
            yield _int(user), _int(movie), _rating(rating), _int(ts)
        except ValueError:
            raise _bad_line(path, number, line, "user item rating timestamp (tab-separated)") from None


def _ml100k_genre_order(folder: Path) -> tuple[str, ...]:
    genre_file = folder / "u.genre"
    if not genre_file.is_file():
        return ML100K_GENRES
    pairs = [line.rsplit("|", 1) for _, line in _lines(genre_file)]
    try:
        ordered = sorted(((int(i), name) for name, i in pairs), key=lambda p: p[0])
    except ValueError:
        raise ValueError(f"{genre_file}: expected lines 'genre|index'") from None
    return tuple(name for _, name in ordered)


def _ml100k_movies(path: Path, genre_names: tuple[str, ...]) -> Iterator[tuple[int, str, str]]:
    n = len(genre_names)
    for number, line in _lines(path):
        parts = line.split("|")
        if len(parts) < 5 + n:
            raise _bad_line(path, number, line, f"movie id|title|release date|video date|IMDb URL|{n} genre flags")
        flags = parts[-n:]
        try:
            movie = _int(parts[0])
            names = [g for g, flag in zip(genre_names, flags) if int(flag or 0)]
        except ValueError:
            raise _bad_line(path, number, line, "numeric movie id and 0/1 genre flags") from None
        # The title is every field between the id and the release date (a '|' in a title would split it).
        title = "|".join(parts[1 : len(parts) - n - 3]).strip()
        yield movie, title, _genres(names)


def _dat_fields(path: Path, expected: str, count: int) -> Iterator[tuple[int, list[str]]]:
    for number, line in _lines(path):
        parts = line.split("::")
        if len(parts) < count:
            raise _bad_line(path, number, line, expected)
        if len(parts) > count:  # a '::' inside the text field (title or tag): glue the middle back
            parts = [*parts[: count - 2], "::".join(parts[count - 2 : -1]), parts[-1]]
        yield number, parts


def _dat_ratings(path: Path) -> Iterator[tuple[int, int, str, int]]:
    expected = "UserID::MovieID::Rating::Timestamp"
    for number, (user, movie, rating, ts) in _dat_fields(path, expected, 4):
        try:
            yield _int(user), _int(movie), _rating(rating), _int(ts)
        except ValueError:
            raise _bad_line(path, number, "::".join((user, movie, rating, ts)), expected) from None


def _dat_movies(path: Path) -> Iterator[tuple[int, str, str]]:
    expected = "MovieID::Title::Genres"
    for number, line in _lines(path):
        movie, sep, rest = line.partition("::")
        title, sep2, genres = rest.rpartition("::")
        try:
            if not (sep and sep2):
                raise ValueError
            yield _int(movie), title.strip(), _genres(genres.split("|"))
        except ValueError:
            raise _bad_line(path, number, line, expected) from None


def _dat_tags(path: Path) -> Iterator[tuple[int, int, str, int]]:
    expected = "UserID::MovieID::Tag::Timestamp"
    for number, (user, movie, tag, ts) in _dat_fields(path, expected, 4):
        try:
            yield _int(user), _int(movie), tag, _int(ts)
        except ValueError:
            raise _bad_line(path, number, "::".join((user, movie, tag, ts)), expected) from None


def _source_signature(files: list[Path]) -> str:
    return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])


_MARKER = ".converted-from.json"


def convert_legacy(src_dir: Path, out_dir: Path) -> Path:
    """Convert an ml-100k / ml-1m / ml-10m folder into the CSV layout in ``out_dir``; returns the folder
    with the CSV files (``src_dir`` itself if it already is in the CSV layout).

    The layout is detected from the files present (``u.data`` + ``u.item``; ``ratings.dat`` +
    ``movies.dat`` [+ ``tags.dat``]); a folder holding one such folder (an extracted zip) works too.
    Files appear in ``out_dir`` only when complete, and a conversion already done from the same
    source files is not repeated.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise ValueError(f"{src_dir} is not a folder")
    try:
        folder = _data_folder(src_dir)
    except ValueError:
        found = sorted(p.name for p in src_dir.iterdir())[:10]
        raise ValueError(
            f"unknown MovieLens layout in {src_dir}: found {found}; expected ratings.csv (ml-latest), "
            "u.data + u.item (ml-100k) or ratings.dat + movies.dat (ml-1m, ml-10m)"
        ) from None
    layout = detect_layout(folder)
    if layout == "csv":
        return folder

    if layout == "ml-100k":
        sources = {"ratings": folder / "u.data", "movies": folder / "u.item"}
    else:
        sources = {"ratings": folder / "ratings.dat", "movies": folder / "movies.dat"}
        if (folder / "tags.dat").is_file():
            sources["tags"] = folder / "tags.dat"
    missing = [p.name for p in sources.values() if not p.is_file()]
    if missing:
        raise ValueError(f"incomplete {layout} folder {folder}: missing {', '.join(missing)}")

    signature = _source_signature(list(sources.values()))
    marker = out_dir / _MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == signature:
        return out_dir

    out_dir.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".converting-"))
    try:
        if layout == "ml-100k":
            genre_names = _ml100k_genre_order(folder)
            _write_csv(
                work / "movies.csv", ("movieId", "title", "genres"), _ml100k_movies(sources["movies"], genre_names)
            )
            _write_ratings(work / "ratings.csv", _ml100k_ratings(sources["ratings"]))
        else:
            _write_csv(work / "movies.csv", ("movieId", "title", "genres"), _dat_movies(sources["movies"]))
            if "tags" in sources:
                _write_csv(work / "tags.csv", ("userId", "movieId", "tag", "timestamp"), _dat_tags(sources["tags"]))
            _write_ratings(work / "ratings.csv", _dat_ratings(sources["ratings"]))
        for stale in ("ratings.csv", "movies.csv", "tags.csv"):
            (out_dir / stale).unlink(missing_ok=True)
        for produced in sorted(work.iterdir(), key=lambda p: p.name == "ratings.csv"):  # ratings.csv last
            os.replace(produced, out_dir / produced.name)
        marker.write_text(signature, encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def release_folder(name: str = DEFAULT_RELEASE, cache_dir: Path = Path("var/cache"), **kw) -> Path:
    """A folder in the CSV layout holding release ``name``: downloaded (cached) and, if legacy, converted
    into ``<cache_dir>/converted/<name>``. Keyword arguments go to ``download_release``."""
    release = _release(name)
    folder = download_release(name, cache_dir, **kw)
    if release.legacy or detect_layout(folder) != "csv":
        return convert_legacy(folder, Path(cache_dir) / "converted" / name)
    return folder


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Get MovieLens releases as folders of CSV files.")
    commands = parser.add_subparsers(dest="command", required=True)
    down = commands.add_parser("download", help="download, verify, extract (and convert a legacy release)")
    down.add_argument("name", nargs="?", default=DEFAULT_RELEASE, choices=list(RELEASES))
    down.add_argument("--cache", type=Path, default=Path(os.environ.get("MOVIELENS_CACHE_DIR", "var/cache")))
    down.add_argument("--base-url", default=BASE_URL, help="mirror serving <name>.zip and <name>.zip.md5")
    down.add_argument("--timeout", type=float, default=30)
    down.add_argument("--no-progress", action="store_true")
    conv = commands.add_parser("convert", help="convert an ml-100k / ml-1m / ml-10m folder to CSV")
    conv.add_argument("src", type=Path)
    conv.add_argument("out", type=Path)
    commands.add_parser("list", help="the known releases")
    args = parser.parse_args(argv)

    try:
        if args.command == "download":
            kw = {"base_url": args.base_url, "timeout": args.timeout, "progress": not args.no_progress}
            print(release_folder(args.name, args.cache, **kw))
        elif args.command == "convert":
            print(convert_legacy(args.src, args.out))
        else:
            for release in RELEASES.values():
                print(f"{release.name:16} {release.about}  {release.url()}")
    except (DatasetError, ValueError, OSError) as err:
        parser.exit(1, f"error: {err}\n")


if __name__ == "__main__":
    main()
