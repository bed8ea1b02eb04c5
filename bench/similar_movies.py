"""Similar movies for every movie: blocked matrix products (ours) against per-movie Python UDFs.

    .venv/bin/python bench/similar_movies.py [--movies 62423] [--rank 64] [--n 50] [--udf-sample 40]

Item factors are random (the work does not depend on their values), shaped like ML-25M's catalogue.
Ours: ``spark_jobs.similar.similar_movies`` over every movie, written to Parquet (local[2]).
The slow side, timed on a sample of movies in the same run and scaled to the whole catalogue:

- ``udf_pairwise``: what the original notebook did: a Python UDF called once per movie that walks the
  catalogue computing the cosine of each pair, then sorts;
- ``udf_numpy``: the same per-movie UDF, but one numpy matrix-vector product per movie (a fairer,
  already-optimised version of the per-movie approach).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--movies", type=int, default=62_423)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--udf-sample", type=int, default=40, help="movies timed with the pairwise UDF")
    parser.add_argument("--numpy-sample", type=int, default=2000, help="movies timed with the numpy UDF")
    args = parser.parse_args()

    import os

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this venv's numpy/pyarrow
    import numpy as np
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from spark_jobs import similar

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(args.movies, args.rank)).astype(np.float32)
    factors = spark.createDataFrame(
        [(int(i), v.tolist()) for i, v in enumerate(vectors, start=1)], "id int, features array<float>"
    ).cache()
    factors.count()

    results: dict = {"movies": args.movies, "rank": args.rank, "n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        similar.similar_movies(factors, args.n).write.parquet(str(Path(tmp) / "similar"))
        results["blocked_s"] = round(time.monotonic() - started, 2)
        results["blocked_rows"] = spark.read.parquet(str(Path(tmp) / "similar")).count()

    catalogue = spark.sparkContext.broadcast(vectors)
    n = args.n

    def pairwise(features):
        import math

        target = list(features)
        norm_t = math.sqrt(sum(x * x for x in target))
        scored = []
        for other_id, other in enumerate(catalogue.value, start=1):
            dot = sum(a * b for a, b in zip(target, other))
            norm_o = math.sqrt(sum(float(x) * float(x) for x in other))
            scored.append((dot / (norm_t * norm_o) if norm_t and norm_o else 0.0, other_id))
        scored.sort(reverse=True)
        return [i for _, i in scored[1 : n + 1]]

    def per_movie_numpy(features):
        import numpy as np

        all_vectors = catalogue.value
        target = np.asarray(features, dtype=np.float32)
        sims = all_vectors @ target / (np.linalg.norm(all_vectors, axis=1) * np.linalg.norm(target) + 1e-12)
        top = np.argsort(-sims)[1 : n + 1]
        return [int(i) + 1 for i in top]

    for name, fn, sample in (("udf_pairwise", pairwise, args.udf_sample), ("udf_numpy", per_movie_numpy, args.numpy_sample)):
        udf = F.udf(fn, "array<int>")
        subset = factors.where(F.col("id") <= sample).repartition(2)
        # Warm up: Python workers started and the broadcast loaded before the clock starts.
        factors.where(F.col("id") <= 2).repartition(2).select(udf("features")).collect()
        started = time.monotonic()
        done = subset.select("id", udf("features").alias("similar")).collect()
        elapsed = time.monotonic() - started
        per_movie = elapsed / len(done)
        results[name] = {
            "sample_movies": len(done),
            "sample_s": round(elapsed, 2),
            "per_movie_ms": round(per_movie * 1000, 2),
            "all_movies_estimated_s": round(per_movie * args.movies, 1),
            "speedup_of_blocked": round(per_movie * args.movies / results["blocked_s"], 1),
        }
    results["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(results, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
