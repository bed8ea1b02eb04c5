"""``python -m movielens.serving.cli recommend|similar``: answers from the latest outputs.

``recommend --user 42`` / ``similar --movie 1``, from the lake (``--from lake``, the default) or the serving
database (``--from db``, see :mod:`movielens.serving`). The embedded default's ``demo`` and ``ui`` are development
tooling: ``python -m devenv``.
"""

from __future__ import annotations

import argparse
import sys


def answer(command: str, item_id: int, n: int, source: str, ds: str | None) -> int:
    from movielens.serving import ServingError, lookup

    try:
        if command == "recommend":
            print(lookup.recommendations_text(lookup.lookup_recommendations(item_id, n, source, ds)))
        else:
            print(lookup.similar_text(lookup.lookup_similar(item_id, n, source, ds)))
    except ServingError as err:
        print(f"movielens {command}: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="movielens")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what, flag in (("recommend", "top recommendations for a user", "--user"),
                             ("similar", "movies most similar to a movie", "--movie")):
        lookup = sub.add_parser(name, help=f"{what}, from the latest outputs")
        lookup.add_argument(flag, dest="id", type=int, required=True)
        lookup.add_argument("-n", type=int, default=10, help="how many (default 10)")
        lookup.add_argument("--from", dest="source", choices=("lake", "db"), default="lake",
                            help="the lake's gold tables (default) or the serving database (MOVIELENS_SERVING_CONN_ID)")
        lookup.add_argument("--ds", help="the latest outputs with ds <= this date (default: the latest)")
    args = parser.parse_args(argv)
    return answer(args.command, args.id, args.n, args.source, args.ds)


if __name__ == "__main__":
    sys.exit(main())
