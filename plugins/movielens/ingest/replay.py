"""A MovieLens release replayed as a daily feed: one drop of files per date of a window.

Drop 0 (the window's first date) holds the catalogue, links, tags and the older ratings; drops 1 to
``days - 1`` each hold a slice of the newest ratings (the newest ``new_share`` of them, in slices of equal
count, in time order). Ratings are ranked by timestamp with a stable sort, and a cut never falls between
two ratings with the same timestamp, so every rating is in exactly one drop and a later drop never holds
an older rating than an earlier one. Lines are copied byte for byte, in their order in the release.

The split of a release is cached (``<cache_dir>/replay/<key>/drop-K/``), keyed by the source's ratings
files (path, size, mtime), ``days`` and ``new_share``. Standard library only.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.common import layout

MANIFEST = "replay.json"
MAX_DAYS = 366


@dataclass(frozen=True)
class Window:
    """The dates of a replay: ``days`` consecutive dates from ``start``; drop K lands on ``start + K``."""

    start: dt.date
    days: int
    new_share: float

    def __post_init__(self) -> None:
        if not 2 <= self.days <= MAX_DAYS:
            raise ValueError(f"a replay needs 2 to {MAX_DAYS} dates (MOVIELENS_REPLAY_DAYS), got {self.days}")
        if not 0 < self.new_share < 1:
            raise ValueError(f"MOVIELENS_REPLAY_NEW_SHARE must be between 0 and 1 (exclusive), got {self.new_share}")

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    def drop_index(self, ds: str) -> int:
        """Which drop lands on ``ds``; a date outside the window is an error saying which window."""
        index = (dt.date.fromisoformat(layout.check_ds(ds)) - self.start).days
        if not 0 <= index < self.days:
            raise ValueError(
                f"ds={ds} is outside the replay window {self.start} .. {self.end} "
                f"(MOVIELENS_REPLAY_START={self.start}, MOVIELENS_REPLAY_DAYS={self.days})"
            )
        return index


def _ratings_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and layout.file_kind(p.name) == "ratings")
    if not files:
        raise FileNotFoundError(f"no ratings*.csv in {folder}: nothing to replay")
    return files


def _timestamps(path: Path) -> array:
    """The timestamp of every data line of a ratings CSV, in file order (one pass, no line kept)."""
    stamps = array("q")
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8-sig").strip().split(",")
        if "timestamp" not in header:
            raise ValueError(f"{path}: no 'timestamp' column in the header {header}")
        column = header.index("timestamp")
        for number, line in enumerate(f, 2):
            if not line.strip():
                continue
            try:
                stamps.append(int(line.split(b",")[column]))
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: no integer timestamp in {line[:80]!r}") from None
    return stamps


def cut_points(stamps: list[int] | array, days: int, new_share: float) -> list[int]:
    """Where drops start in the ratings sorted by time: ``days + 1`` ranks, from 0 to ``len(stamps)``.

    The newest ``new_share`` of the ratings go to drops 1..days-1 in equal counts; a cut that would
    separate two equal timestamps moves back to the first of them (so a drop can be empty when one
    timestamp fills it).
    """
    ordered = sorted(stamps)
    total = len(ordered)
    first = total - round(total * new_share)
    cuts = [0]
    for k in range(days - 1):
        rank = first + round(k * (total - first) / (days - 1))
        rank = bisect.bisect_left(ordered, ordered[rank]) if 0 < rank < total else rank
        cuts.append(max(rank, cuts[-1]))
    cuts.append(total)
    return cuts


def assign_drops(stamps: list[int] | array, days: int, new_share: float) -> bytearray:
    """The drop of each rating, in file order (stable by timestamp: ties stay in file order)."""
    cuts = cut_points(stamps, days, new_share)
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    drops = bytearray(len(stamps))
    for drop in range(days):
        for rank in range(cuts[drop], cuts[drop + 1]):
            drops[order[rank]] = drop
    return drops


def _key(folder: Path, ratings: list[Path], days: int, new_share: float) -> str:
    parts = [str(folder.resolve()), str(days), repr(new_share)]
    for path in ratings:
        stat = path.stat()
        parts += [path.name, str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def split(folder: Path, days: int, new_share: float, cache_dir: Path) -> Path:
    """The replay of the release in ``folder``: a folder with ``drop-0`` .. ``drop-<days-1>`` and a
    manifest (rows per drop, time span per drop). Made once per source and window shape."""
    Window(dt.date.min, days, new_share)  # checks the shape
    ratings = _ratings_files(folder)
    out = Path(cache_dir) / "replay" / f"{folder.name}-{_key(folder, ratings, days, new_share)}"
    if (out / MANIFEST).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        drop_dirs = [work / f"drop-{k}" for k in range(days)]
        for d in drop_dirs:
            d.mkdir()
        for path in sorted(folder.iterdir()):
            if path.is_file() and layout.file_kind(path.name) not in (None, "ratings"):
                shutil.copyfile(path, drop_dirs[0] / path.name)
        # Every ratings file together is ranked by time: a row's drop is its rank in all of them.
        stamps = [_timestamps(path) for path in ratings]
        drops = assign_drops(array("q", (s for part in stamps for s in part)), days, new_share)
        rows, spans = [0] * days, [[None, None] for _ in range(days)]
        offset = 0
        for path, part in zip(ratings, stamps):
            outs = [open(d / path.name, "wb") for d in drop_dirs]
            try:
                with open(path, "rb") as f:
                    header = f.readline()
                    for out_file in outs:
                        out_file.write(header)
                    i = 0
                    for line in f:
                        if not line.strip():
                            continue
                        drop = drops[offset + i]
                        outs[drop].write(line if line.endswith(b"\n") else line + b"\n")
                        rows[drop] += 1
                        stamp, span = part[i], spans[drop]
                        span[0] = stamp if span[0] is None else min(span[0], stamp)
                        span[1] = stamp if span[1] is None else max(span[1], stamp)
                        i += 1
            finally:
                for out_file in outs:
                    out_file.close()
            offset += len(part)
        manifest = {
            "source": str(folder.resolve()),
            "days": days,
            "new_share": new_share,
            "drops": [{"drop": k, "ratings": rows[k], "first_timestamp": spans[k][0], "last_timestamp": spans[k][1]}
                      for k in range(days)],
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.replace(work, out)
        except OSError:  # another process made it first: theirs is the same split
            if not (out / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def drop_folder(folder: Path, window: Window, ds: str, cache_dir: Path) -> tuple[Path, str]:
    """The folder of the drop that lands on ``ds``, and a one-line description of it."""
    index = window.drop_index(ds)
    replay = split(folder, window.days, window.new_share, cache_dir)
    rows = json.loads((replay / MANIFEST).read_text())["drops"][index]["ratings"]
    what = "catalogue, links, tags and the older ratings" if index == 0 else "new ratings"
    return replay / f"drop-{index}", (
        f"replay drop {index} of {window.days - 1} ({what}: {rows} ratings) of {folder}, "
        f"window {window.start} .. {window.end}"
    )
