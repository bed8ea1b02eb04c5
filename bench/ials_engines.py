"""iALS by the engine or by our own solver: fit time, peak memory and ranking quality, side by side.

    .venv/bin/python bench/ials_engines.py [--dir DIR] [--max-users N] [--engines ours-driver ours-spark spark-als]

The engines, with the same rank, regularisation, alpha and iterations (the product's defaults: 32, 0.3, 2.0, 8)
on the same (user, movie) interactions over the same ``max_items`` most-rated movies
(``top_n_model.interactions``):

- ``ours-driver``: ``top_n_model.fit_ials`` on its driver path (numpy on the driver; the product's path up to
  ``LOCAL_MAX_RATINGS`` ratings); forced at any size by raising ``LOCAL_MAX_RATINGS`` for that process;
- ``ours-spark``: our former Spark path (each half-iteration a ``mapInPandas`` job solving its rows with
  ``top_n_model.solve_rows``; ``fit_ours_spark`` below, as ``fit_ials`` had it before the switch), at any size;
- ``spark-als``: ``top_n_model.fit_spark_als``, i.e. ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` on
  (userId, movieId, 1.0) with ``numUserBlocks = numItemBlocks`` = the interactions' partition count (what the
  product's ``fit_ials`` now runs above ``LOCAL_MAX_RATINGS``), factors as ``top_n_model.Factors``;
  ``spark-als:B`` sets B blocks.

Spark's implicit ALS solves, per row, (Y'Y + sum_i alpha |r_i| y_i y_i' + regParam * n I) x = sum_i (1 + alpha r_i)
y_i over the n positive ratings of the row (ALS-WR scaling; ``ALS.computeFactors`` in Spark's
``ml/recommendation/ALS.scala``): with r = 1 that is exactly ``top_n_model.solve_rows``, so regParam = ials_reg
with no mapping. Each engine's factors also go through the same objective function (``ials_loss``).

The protocol is the product's: ``evaluation.split`` (stratified by movie, test fraction 0.25, seed 42) once in
the parent process, written to Parquet; then each engine in its own process (its own Spark session, so each peak
memory is its own): interactions built and cached (not timed; on the driver path each user's movies are
collected, as the product's EASE step does before iALS), the iALS fit timed, then NDCG@10 / P@10 of iALS alone
and of the product's blend (EASE + iALS, ``TopNModel`` + ``recommend`` + ``evaluation.ranking_metrics``) with
EASE reg / blend weight ``--ease-reg`` / ``--ials-weight`` (default: the product's defaults 400 / 1.0). Peak
memory: resident set of the engine's process tree (Python driver, Spark driver JVM, Python workers) sampled
every 0.1 s during the fit. ``--max-users N`` keeps users 1..N (the synthetic generator writes whole users in
id order), a documented fraction of a large file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.daily_run import tree_rss  # noqa: E402  (resident bytes of a process tree)

K = 10
ENGINES = ("ours-driver", "ours-spark", "spark-als")


class PeakSampler:
    """Samples the resident memory of this process's tree in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            self._stop.wait(self.interval)

    def reset(self) -> int:
        now = tree_rss(os.getpid())
        self.peak = now
        return now

    def stop(self):
        self._stop.set()
        self._thread.join()


def session(app: str, driver_memory: str, master: str):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--master {master} --driver-memory {driver_memory} pyspark-shell"
    from spark_jobs.common import session as common_session

    return common_session.get_session(app)  # the product's settings


# ------------------------------------------------------------------------------------------------
# Our former Spark path, kept for the benchmark; the objective
# ------------------------------------------------------------------------------------------------


def fit_ours_spark(data, rank: int, reg: float, alpha: float, iterations: int, seed: int):
    """Our iALS on Spark as ``top_n_model.fit_ials`` ran it above ``LOCAL_MAX_RATINGS`` until it moved to Spark's
    ALS (commit f0f365f): each half-iteration one ``mapInPandas`` job solving its rows in batches with
    ``top_n_model.solve_rows`` against the other side's broadcast factors. Kept here so the benchmark reruns."""
    import numpy as np
    from pyspark.sql import functions as F

    from spark_jobs import top_n_model

    spark = data.by_user.sparkSession
    users_index = top_n_model._index_frame(spark, data.user_ids, "userId", "uidx")
    by_item = top_n_model._group_rows(data.pairs.join(F.broadcast(users_index), "userId"), "idx", "uidx",
                                      data.partitions).cache()
    rng = np.random.default_rng(seed)
    items = (rng.standard_normal((len(data.item_ids), rank)) * 0.01).astype(np.float32)
    users = np.zeros((len(data.user_ids), rank), dtype=np.float32)

    def half(grouped, other: np.ndarray, keys_sorted: np.ndarray) -> np.ndarray:
        shared = spark.sparkContext.broadcast(other)

        def solve(batches):
            import pandas as pd

            y = shared.value.astype(np.float64)
            yty = y.T @ y
            for pdf in batches:
                x = top_n_model.solve_rows(list(pdf["idx"]), y, yty, reg, alpha)
                yield pd.DataFrame({"key": pdf["key"].to_numpy(), "f": list(x)})

        pdf = grouped.mapInPandas(solve, "key int, f array<float>").toPandas()
        shared.unpersist()
        out = np.zeros((len(keys_sorted), rank), dtype=np.float32)
        if len(pdf):
            out[np.searchsorted(keys_sorted, pdf["key"].to_numpy(dtype=np.int64))] = np.vstack(pdf["f"].to_numpy())
        return out

    item_keys = np.arange(len(data.item_ids))
    for _ in range(iterations):
        users = half(data.by_user, items, data.user_ids)
        items = half(by_item, users, item_keys)
    by_item.unpersist()
    return top_n_model.Factors(data.user_ids, users, data.item_ids, items)


def ials_loss(data, factors, reg: float, alpha: float) -> float:
    """The iALS objective: sum over every (user, movie) of c (p - x'y)^2 + reg (n_u |x_u|^2 + n_i |y_i|^2),
    p = 1 and c = 1 + alpha on the rated pairs, p = 0 and c = 1 elsewhere."""
    import numpy as np

    x, y = factors.user_factors.astype(np.float64), factors.item_factors.astype(np.float64)
    spark = data.by_user.sparkSession
    shared = spark.sparkContext.broadcast({"uids": factors.user_ids, "x": x, "y": y})

    def observed(batches):
        import pandas as pd

        s = shared.value
        for pdf in batches:
            total, norms = 0.0, 0.0
            for key, idx in zip(pdf["key"].to_numpy(dtype=np.int64), pdf["idx"]):
                idx = np.asarray(idx, dtype=np.int64)
                xu = s["x"][np.searchsorted(s["uids"], key)]
                scores = s["y"][idx] @ xu
                total += float(np.sum((1.0 + alpha) * (1.0 - scores) ** 2 - scores ** 2))
                norms += len(idx) * float(xu @ xu)
            yield pd.DataFrame({"obs": [total], "norms": [norms]})

    parts = data.by_user.mapInPandas(observed, "obs double, norms double").toPandas()
    shared.unpersist()
    every_pair = float(np.sum((x.T @ x) * (y.T @ y)))  # sum over all pairs of (x'y)^2
    item_norms = float(np.sum(data.popularity.astype(np.float64) * np.sum(y * y, axis=1)))
    return every_pair + float(parts["obs"].sum()) + reg * (float(parts["norms"].sum()) + item_norms)


# ------------------------------------------------------------------------------------------------
# One engine in its own process
# ------------------------------------------------------------------------------------------------


def run_engine(args) -> dict:
    import numpy as np

    from spark_jobs import evaluation, top_n_model

    sampler = PeakSampler()
    engine, _, blocks = args.child.partition(":")
    spark = session(f"bench-ials-{engine}", args.driver_memory, args.master)
    work = Path(args.work)
    train = spark.read.parquet(str(work / "train")).cache()
    test = spark.read.parquet(str(work / "test")).cache()
    train_rows, test_rows = train.count(), test.count()
    if engine == "ours-spark":
        top_n_model.LOCAL_MAX_RATINGS = 0
        fit = fit_ours_spark
    elif engine == "ours-driver":
        top_n_model.LOCAL_MAX_RATINGS = 10 ** 12
        fit = top_n_model.fit_ials
    elif engine == "spark-als":
        def fit(data, **p):
            return top_n_model.fit_spark_als(data, **p, blocks=int(blocks) if blocks else None)
    else:
        raise SystemExit(f"unknown engine {engine}")
    t0 = time.monotonic()
    data = top_n_model.interactions(train, args.max_items)
    if data.local:
        data.user_rows()  # the product's EASE step collects them before iALS runs
    prepare_s = time.monotonic() - t0
    p = {"rank": args.rank, "reg": args.reg, "alpha": args.alpha, "iterations": args.iterations, "seed": args.seed}
    before = sampler.reset()
    t0 = time.monotonic()
    fit_started = time.strftime("%H:%M:%S", time.gmtime())
    factors = fit(data, **p)
    fit_s = time.monotonic() - t0
    fit_peak = sampler.peak
    fit_ended = time.strftime("%H:%M:%S", time.gmtime())
    result = {"engine": args.child, "train_rows": train_rows, "test_rows": test_rows, "ratings": data.ratings,
              "users": int(len(data.user_ids)), "items": int(len(data.item_ids)), "partitions": data.partitions,
              "local_path": data.local, "prepare_s": round(prepare_s, 1), "fit_s": round(fit_s, 2),
              "rss_before_fit_gib": round(before / 2 ** 30, 2), "fit_peak_gib": round(fit_peak / 2 ** 30, 2),
              "driver_memory": args.driver_memory, "params": p,
              "fit_utc": f"{fit_started}-{fit_ended}"}
    print(f"[{args.child}] fit {fit_s:.2f} s, peak {fit_peak / 2 ** 30:.2f} GiB", flush=True)
    if args.rerun:
        again = fit(data, **p)
        result["rerun_identical"] = bool(np.array_equal(again.user_factors, factors.user_factors)
                                         and np.array_equal(again.item_factors, factors.item_factors))
        result["rerun_max_abs_diff"] = float(max(np.abs(again.user_factors - factors.user_factors).max(),
                                                 np.abs(again.item_factors - factors.item_factors).max()))
    if args.loss:
        result["loss"] = ials_loss(data, factors, args.reg, args.alpha)
    if engine == "spark-als":
        # Spark's last half-step solves the users from the items: one of our row solves from Spark's item
        # factors must give Spark's user factors back if the two solve the same equations.
        y = factors.item_factors.astype(np.float64)
        ours = top_n_model.solve_rows(data.user_rows(), y, y.T @ y, args.reg, args.alpha)
        scale = float(np.abs(factors.user_factors).max())
        result["half_step_max_rel_diff"] = float(np.abs(ours - factors.user_factors).max() / scale)
    np.save(work / f"{args.child}-items.npy", factors.item_factors)
    catalogue = train.select("movieId").distinct().count()
    users = test.select("userId").distinct().cache()
    t0 = time.monotonic()
    alone = top_n_model.TopNModel(data, None, factors, 1.0)
    result["ials"] = evaluation.ranking_metrics(top_n_model.recommend(alone, K, users=users), test, K, catalogue)
    ease = top_n_model.ease_weights(top_n_model.item_gram(data), args.ease_reg)
    blend = top_n_model.TopNModel(data, ease, factors, args.ials_weight)
    result["blend"] = evaluation.ranking_metrics(top_n_model.recommend(blend, K, users=users), test, K, catalogue)
    result["eval_s"] = round(time.monotonic() - t0, 1)
    result["ease_reg"], result["ials_weight"] = args.ease_reg, args.ials_weight
    data.release()
    spark.stop()
    sampler.stop()
    (work / f"{args.child}.json").write_text(json.dumps(result, indent=2))
    return result


# ------------------------------------------------------------------------------------------------
# The parent: split once, then every engine in turn
# ------------------------------------------------------------------------------------------------


def prepare(args) -> dict:
    from pyspark.sql import functions as F

    from spark_jobs import evaluation

    spark = session("bench-ials-split", args.driver_memory, args.master)
    folder = Path(args.dir)
    ratings = spark.read.csv(str(folder / "ratings.csv"), header=True,
                             schema="userId int, movieId int, rating double, timestamp long")
    movies = spark.read.csv(str(folder / "movies.csv"), header=True, schema="movieId int, title string, genres string")
    ratings = ratings.join(movies.select("movieId"), "movieId", "left_semi").select("userId", "movieId", "rating")
    if args.max_users:
        ratings = ratings.where(F.col("userId") <= args.max_users)
    train, test = evaluation.split(ratings, args.test_fraction, args.split_seed)
    work = Path(args.work)
    train.write.mode("overwrite").parquet(str(work / "train"))
    test.write.mode("overwrite").parquet(str(work / "test"))
    counts = {"train": spark.read.parquet(str(work / "train")).count(),
              "test": spark.read.parquet(str(work / "test")).count()}
    counts["users"] = spark.read.parquet(str(work / "train")).select("userId").distinct().count()
    spark.stop()
    return counts


def table(results: list[dict]) -> str:
    lines = ["| engine | path | fit (s) | peak memory during fit (GiB) | iALS NDCG@10 | iALS P@10 | "
             "blend NDCG@10 | blend P@10 | iALS objective |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        path = ("driver (numpy)" if r["local_path"] else "Spark mapInPandas") if not r["engine"].startswith("spark-als") \
            else f"Spark ALS, {r['engine'].partition(':')[2] or r['partitions']} blocks"
        loss = f"{r['loss']:,.1f}" if "loss" in r else ""
        lines.append(f"| {r['engine']} | {path} | {r['fit_s']:.1f} | {r['fit_peak_gib']:.2f} | "
                     f"{r['ials']['ndcg_at_10']:.4f} | {r['ials']['precision_at_10']:.4f} | "
                     f"{r['blend']['ndcg_at_10']:.4f} | {r['blend']['precision_at_10']:.4f} | {loss} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT.parent / "shared" / "movielens" / "ml-latest-small"))
    parser.add_argument("--work", default=str(ROOT / "var" / "ials-engines"),
                        help="split and results (not under var/bench/, which bench/daily_run.py clears)")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES),
                        help="ours-driver, ours-spark, spark-als or spark-als:BLOCKS")
    parser.add_argument("--max-users", type=int, default=None, help="keep users 1..N (a fraction of the file)")
    parser.add_argument("--max-items", type=int, default=6000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--reg", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=2.0)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42, help="the fits' seed (the product passes its seed, 42)")
    parser.add_argument("--split-seed", type=int, default=42)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--ease-reg", type=float, default=400.0)
    parser.add_argument("--ials-weight", type=float, default=1.0)
    parser.add_argument("--driver-memory", default=os.environ.get("MOVIELENS_SPARK_DRIVER_MEMORY", "4g"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rerun", action="store_true", help="fit twice and report whether the factors are identical")
    parser.add_argument("--no-loss", dest="loss", action="store_false", help="skip the objective value")
    parser.add_argument("--reuse-split", action="store_true", help="keep the split already in --work")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_engine(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if not (args.reuse_split and (work / "train").exists()):
        counts = prepare(args)
        print(f"split: {json.dumps(counts)} in {time.monotonic() - started:.0f} s", flush=True)
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = []
    for engine in args.engines:
        cmd = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--child", engine]
        t0 = time.monotonic()
        done = subprocess.run(cmd, text=True, capture_output=True)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-5000:])
            raise SystemExit(f"engine {engine} failed")
        result = json.loads((work / f"{engine}.json").read_text())
        result["process_s"] = round(time.monotonic() - t0, 1)
        results.append(result)
        print(json.dumps(result), flush=True)
    print(f"load average at the end: {open('/proc/loadavg').read().strip()}")
    print(table(results))


if __name__ == "__main__":
    main()
