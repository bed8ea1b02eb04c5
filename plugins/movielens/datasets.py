"""Real MovieLens releases as a local folder of CSVs in the ml-latest layout.

- :func:`download_release`: GroupLens zip, with a progress bar, verified against the ``.md5`` GroupLens
  publishes beside it, cached (a verified zip is never downloaded twice).
- :func:`convert_legacy`: ml-100k (``u.data``, ``u.item``) and ml-1m / ml-10m (``::``-separated
  ``.dat``) to ``ratings.csv`` / ``movies.csv`` (/ ``tags.csv``), streamed line by line.
- :func:`release_folder`: both, returning a folder ready to land.

``python -m movielens.datasets download ml-latest-small --cache var/cache``
``python -m movielens.datasets convert path/to/ml-1m out/``
Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

BASE_URL = "https://files.grouplens.org/datasets/movielens"
RELEASES = ("ml-latest-small", "ml-latest", "ml-25m", "ml-32m", "ml-100k", "ml-1m", "ml-10m")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"


class DownloadUnavailable(RuntimeError):
    """The release could not be fetched (no network, host down, HTTP error)."""


class ChecksumMismatch(RuntimeError):
    """The downloaded zip does not match the published MD5."""


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, timeout: float) -> urllib.request.addinfourl:
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https/http URLs we build)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadUnavailable(f"cannot download {url}: {reason}") from None


def published_md5(url: str, timeout: float = 30) -> str:
    with _fetch(url + ".md5", timeout) as response:
        text = response.read().decode("ascii", "replace").strip()
    token = text.split()[0] if text else ""
    if len(token) != 32:
        # Some .md5 files read "MD5 (file.zip) = <hex>".
        token = text.rsplit("=", 1)[-1].strip()
    if len(token) != 32:
        raise DownloadUnavailable(f"cannot read a checksum from {url}.md5: {text[:80]!r}")
    return token.lower()


def _progress(done: int, total: int | None, started: float, stream) -> None:
    rate = done / max(time.monotonic() - started, 1e-6) / 1e6
    if total:
        stream.write(f"\r  {done / 1e6:8.1f} / {total / 1e6:.1f} MB  {100 * done / total:5.1f} %  {rate:6.1f} MB/s")
    else:
        stream.write(f"\r  {done / 1e6:8.1f} MB  {rate:6.1f} MB/s")
    stream.flush()


def download_release(name: str, cache_dir: Path, *, base_url: str = BASE_URL, progress: bool = True, timeout: float = 30) -> Path:
    """Download (or reuse) ``<name>.zip``, verify its MD5, extract; return the extracted folder."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.zip"
    archive = cache_dir / f"{name}.zip"
    verified = cache_dir / f"{name}.zip.verified"
    folder = cache_dir / name
    if not (archive.exists() and verified.exists() and verified.read_text().strip() == _md5(archive)):
        expected = published_md5(url, timeout)
        partial = cache_dir / f"{name}.zip.part"
        with _fetch(url, timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done, started, shown = 0, time.monotonic(), 0.0
            print(f"Downloading {url}", file=sys.stderr)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress and time.monotonic() - shown > 0.25:
                    _progress(done, total, started, sys.stderr)
                    shown = time.monotonic()
            if progress:
                _progress(done, total, started, sys.stderr)
                sys.stderr.write("\n")
        actual = _md5(partial)
        if actual != expected:
            partial.unlink()
            raise ChecksumMismatch(f"{url}: MD5 {actual} does not match the published {expected}; download removed")
        partial.replace(archive)
        verified.write_text(actual + "\n")
        shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(cache_dir)
    if not folder.is_dir():
        raise DownloadUnavailable(f"{archive} does not contain a folder named {name}")
    return folder


def _write_csv(path: Path, header: list[str], rows) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _read_lines(path: Path, encodings=("utf-8", "latin-1")):
    """Lines of a legacy file, decoded as UTF-8 when it is, else latin-1 (ml-100k and ml-1m are)."""
    raw = path.read_bytes()
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    for line in text.splitlines():
        if line.strip():
            yield line


def _rating(value: str) -> str:
    return f"{float(value):.1f}"


def convert_legacy(src_dir: Path, out_dir: Path) -> Path:
    """Convert an ml-100k / ml-1m / ml-10m folder to the CSV layout; a CSV folder is returned as is."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if (src_dir / "ratings.csv").exists():
        return src_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if (src_dir / "u.data").exists() and (src_dir / "u.item").exists():
        _write_csv(out_dir / "ratings.csv", ["userId", "movieId", "rating", "timestamp"],
                   ((u, m, _rating(r), t) for u, m, r, t in (l.split("\t") for l in _read_lines(src_dir / "u.data"))))

        def movies():
            for line in _read_lines(src_dir / "u.item"):
                parts = line.split("|")
                flags = parts[5:24]
                genres = [g for g, flag in zip(ML100K_GENRES, flags) if flag == "1" and g != "unknown"]
                yield parts[0], parts[1].strip(), "|".join(genres) or NO_GENRES

        _write_csv(out_dir / "movies.csv", ["movieId", "title", "genres"], movies())
        return out_dir
    if (src_dir / "ratings.dat").exists() and (src_dir / "movies.dat").exists():
        _write_csv(out_dir / "ratings.csv", ["userId", "movieId", "rating", "timestamp"],
                   ((u, m, _rating(r), t) for u, m, r, t in (l.split("::") for l in _read_lines(src_dir / "ratings.dat"))))
        _write_csv(out_dir / "movies.csv", ["movieId", "title", "genres"],
                   ((m, title.strip(), genres.replace("Children's", "Children") or NO_GENRES)
                    for m, title, genres in (l.split("::", 2) for l in _read_lines(src_dir / "movies.dat"))))
        if (src_dir / "tags.dat").exists():
            _write_csv(out_dir / "tags.csv", ["userId", "movieId", "tag", "timestamp"],
                       (l.split("::", 3) for l in _read_lines(src_dir / "tags.dat")))
        return out_dir
    found = sorted(p.name for p in src_dir.iterdir()) if src_dir.is_dir() else []
    raise ValueError(f"{src_dir} is not a MovieLens folder (CSV, ml-100k or ml-1m/10m layout); found {found[:10]}")


def release_folder(name: str, cache_dir: Path, **kwargs) -> Path:
    """A CSV-layout folder for the release: downloaded, verified, converted when legacy."""
    if name not in RELEASES:
        raise ValueError(f"unknown MovieLens release {name!r}; one of {', '.join(RELEASES)}")
    folder = download_release(name, cache_dir, **kwargs)
    return convert_legacy(folder, Path(cache_dir) / f"{name}-csv")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MovieLens releases: download (verified, cached) and convert.")
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download")
    down.add_argument("name", choices=RELEASES)
    down.add_argument("--cache", type=Path, default=Path("var/cache"))
    conv = sub.add_parser("convert")
    conv.add_argument("src", type=Path)
    conv.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "download":
        print(release_folder(args.name, args.cache))
    else:
        print(convert_legacy(args.src, args.out))


if __name__ == "__main__":
    main()
