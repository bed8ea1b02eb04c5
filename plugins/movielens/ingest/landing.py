"""Put MovieLens files into ``landing/ds=D/``: from a local folder, a GroupLens download, or the generator.

Sources, by ingest mode (``MOVIELENS_INGEST`` or the DAG's ``ingest`` param):

- ``folder``: every ``*.csv`` of ``MOVIELENS_DIR``, byte for byte (a legacy ml-100k / ml-1m / ml-10m
  folder is first converted to the CSV layout in the cache);
- ``download``: the release ``MOVIELENS_RELEASE`` (ml-latest-small by default) from GroupLens, checksum
  verified and cached in ``MOVIELENS_CACHE_DIR``;
- ``synthetic``: a generated MovieLens-shaped dataset of size ``MOVIELENS_SYNTHETIC_SIZE``;
- ``auto``: ``folder`` when ``MOVIELENS_DIR`` is set, else ``download``, else (offline) ``synthetic``,
  saying so in one line;
- ``replay``: the drop of date D when the release (``auto``'s source) is replayed as a daily feed over
  ``MOVIELENS_REPLAY_DAYS`` dates from ``MOVIELENS_REPLAY_START`` (:mod:`.replay`): the first date lands
  the catalogue, links, tags and older ratings, each later date a slice of the newest ratings;
- ``none``: land nothing (production: files arrive in landing from elsewhere).

Command line: ``python -m movielens.ingest.landing --ds 2026-11-20 [--mode auto]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from movielens import config
from movielens.ingest import replay
from movielens.lake import Lake
from spark_jobs.common import layout

log = logging.getLogger(__name__)


def _csv_layout(folder: Path) -> bool:
    return any(p.suffix.lower() == ".csv" and layout.file_kind(p.name) for p in folder.iterdir())


def folder_source(folder: Path, cache_dir: Path) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"MOVIELENS_DIR={folder} is not a folder")
    if _csv_layout(folder):
        return folder
    from movielens.ingest import datasets

    return datasets.convert_legacy(folder, cache_dir / "converted" / folder.name)


def synthetic_source(settings: config.Settings, ds: str) -> Path:
    from movielens.ingest import synthetic

    seed = settings.spec["seed"]
    out = settings.cache_dir / "synthetic" / f"{settings.synthetic_size}-seed{seed}-upto{ds}"
    if not (out / "ratings.csv").exists():
        synthetic.generate_size(out, settings.synthetic_size, seed=seed, end=dt.date.fromisoformat(ds))
    return out


def replay_window(settings: config.Settings) -> replay.Window:
    if not settings.replay_start:
        raise ValueError("ingest mode 'replay' needs MOVIELENS_REPLAY_START (the date of the first drop)")
    start = dt.date.fromisoformat(settings.replay_start)
    return replay.Window(start, settings.replay_days, settings.replay_new_share)


def replay_source(settings: config.Settings, ds: str) -> tuple[Path, str]:
    """The drop of ``ds`` in the replay of ``auto``'s source (a synthetic one ends on the window's end)."""
    window = replay_window(settings)
    window.drop_index(ds)  # a date outside the window fails before any source is fetched
    release, _ = resolve_source(settings, "auto", window.end.isoformat())
    return replay.drop_folder(release, window, ds, settings.cache_dir)


def resolve_source(settings: config.Settings, mode: str, ds: str) -> tuple[Path | None, str]:
    """The local folder to land from, and a one-line description of where it came from."""
    if mode not in config.INGEST_MODES:
        raise ValueError(f"ingest mode must be one of {config.INGEST_MODES}, got {mode!r}")
    if mode == "none":
        return None, "nothing landed (ingest mode 'none')"
    if mode == "replay":
        return replay_source(settings, ds)
    if mode == "folder" or (mode == "auto" and settings.movielens_dir):
        if not settings.movielens_dir:
            raise ValueError("ingest mode 'folder' needs MOVIELENS_DIR")
        folder = Path(settings.movielens_dir).expanduser().resolve()
        return folder_source(folder, settings.cache_dir), f"folder {folder}"
    if mode in ("download", "auto"):
        from movielens.ingest import datasets

        try:
            folder = datasets.release_folder(settings.release, settings.cache_dir)
            return folder, f"GroupLens release {settings.release} (cached in {settings.cache_dir})"
        except datasets.DownloadUnavailable as err:
            if mode == "download":
                raise
            print(
                f"No network for the MovieLens download ({err}); using the synthetic "
                f"'{settings.synthetic_size}' dataset instead.",
                file=sys.stderr,
            )
    return synthetic_source(settings, ds), f"synthetic dataset '{settings.synthetic_size}' (seed {settings.spec['seed']})"


def land_folder(lake: Lake, folder: Path, ds: str) -> list[str]:
    """Copy the MovieLens files of ``folder`` (ratings*, movies*, tags*, links*) byte-for-byte into
    ``landing/ds=D/``; returns the names. A file named as one of them but not a plain .csv (``ratings.csv.gz``)
    is landed too, so that routing rejects it saying why. Other CSVs (ml-25m's genome-*.csv, 400 MB) are not
    landed, and the log says so."""
    names, skipped = [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if layout.claimed_kind(path.name):
            lake.land_bytes_from(path, ds)
            names.append(path.name)
        elif path.name.lower().endswith((".csv", *layout.COMPRESSED_SUFFIXES)):
            skipped.append(path.name)
    if skipped:
        log.warning("not landed (not a ratings/movies/tags/links file): %s", ", ".join(skipped))
    if not names:
        raise FileNotFoundError(f"no ratings/movies/tags/links .csv files in {folder}")
    return names


def land(settings: config.Settings, ds: str, mode: str | None = None) -> dict:
    layout.check_ds(ds)
    folder, source = resolve_source(settings, mode or settings.ingest, ds)
    names = land_folder(Lake.from_settings(settings), folder, ds) if folder else []
    log.info("landed %d files for ds=%s from %s", len(names), ds, source)
    return {"source": source, "files": names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Land MovieLens CSV files into landing/ds=DS/ of the lake.")
    parser.add_argument("--ds", default=dt.date.today().isoformat(), type=layout.check_ds)
    parser.add_argument("--mode", choices=config.INGEST_MODES, default="auto")
    args = parser.parse_args(argv)
    settings = config.load()
    result = land(settings, args.ds, args.mode)
    print(f"landed {len(result['files'])} files into {Lake.from_settings(settings).zone(layout.LANDING, args.ds)} "
          f"from {result['source']}: {', '.join(result['files'])}")


if __name__ == "__main__":
    main()
