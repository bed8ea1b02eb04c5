"""Benchmark: the MovieLens API in Airflow's real API server, PostgreSQL behind it, under a steady load.

The Airflow stack as deployed (``devenv.local_airflow.AirflowStack``: api-server, scheduler, dag-processor,
triggerer; metadata DB and serving tables on one local PostgreSQL) serves gold tables of ``--users`` users x 10
recommendations and ``--movies`` movies x 50 similar movies (bench/serving_publish.py's shapes), published to the
serving database. An open-loop client (asyncio, keep-alive HTTP/1.1 connections, the read-only user's token)
sends ``--rate`` requests per second for ``--seconds``: 80 % a known user's recommendations, 5 % an unknown
user's (the fallback), 15 % a movie's similar movies. Latency is measured from each request's scheduled
send time, so a server that falls behind shows it (no coordinated omission).

    .venv/bin/python bench/serving_api.py [--rate 300] [--seconds 60] [--api-workers 1] [--users 20000]

Target (issue 15): p99 under 25 ms at 300 requests/s for 60 s, no errors, on this 2-core machine (client
and server share it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

DS = "2026-11-20"


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, headers: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def load(port: int, token: str, rate: float, seconds: float, users: int, movies: int, connections: int):
    """Send ``rate`` requests/s for ``seconds``; returns (latencies in s from scheduled send, statuses)."""
    rng = random.Random(7)
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n"

    def path() -> str:
        draw = rng.random()
        if draw < 0.80:
            return f"/movielens/api/v1/users/{rng.randint(1, users)}/recommendations?n=10"
        if draw < 0.85:
            return f"/movielens/api/v1/users/{users + rng.randint(1, 10**6)}/recommendations?n=10"
        return f"/movielens/api/v1/movies/{rng.randint(1, movies)}/similar?n=10"

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            item = await queue.get()
            if item is None:
                writer.close()
                return
            scheduled, target = item
            status = await _get(reader, writer, target, headers)
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, path()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, statuses, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--movies", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn workers of airflow api-server")
    args = parser.parse_args()

    from bench.serving_publish import write_gold
    from devenv import local_airflow
    from tests.servers import Postgres, free_port

    with tempfile.TemporaryDirectory() as tmp, Postgres() as server:
        work = Path(tmp)
        write_gold(work / "lake", DS, args.users, args.movies)
        serving_db = server.create_database("movielens_serving")
        os.environ.update({"MOVIELENS_LAKE_URL": (work / "lake").as_uri(), "MOVIELENS_SERVING_CONN_ID": "movielens_serving",
                           "AIRFLOW_CONN_MOVIELENS_SERVING": server.connection_json(serving_db)})
        from movielens.serving import publish

        print("published", publish.publish(DS)["rows"], flush=True)
        env = local_airflow.airflow_env(home=work / "airflow", lake_url=(work / "lake").as_uri(), api_port=free_port(), extra={
            "MOVIELENS_SERVING_CONN_ID": "movielens_serving",
            "AIRFLOW_CONN_MOVIELENS_SERVING": server.connection_json(serving_db),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API__WORKERS": str(args.api_workers),
        })
        stack = local_airflow.AirflowStack(env, log_dir=work / "logs",
                                           sql_alchemy_conn=server.sqlalchemy_url(server.create_database("airflow")))
        with stack:
            token = stack.token(stack.reader)
            print(f"warm-up: {args.warmup_seconds:.0f} s at {args.rate / 2:.0f} requests/s", flush=True)
            asyncio.run(load(stack.port, token, args.rate / 2, args.warmup_seconds, args.users, args.movies, args.connections))
            latencies, statuses, elapsed = asyncio.run(
                load(stack.port, token, args.rate, args.seconds, args.users, args.movies, args.connections))
        result = {
            "rate_requested": args.rate, "seconds": args.seconds, "requests": len(latencies),
            "throughput_per_s": round(len(latencies) / elapsed, 1), "statuses": statuses,
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2), "mean_ms": round(statistics.mean(latencies) * 1000, 2),
            "api_workers": args.api_workers, "connections": args.connections, "users": args.users, "movies": args.movies,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
