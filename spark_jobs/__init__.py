"""Spark entry points of movielens-platform.

Only pyspark and the standard library are used here: this folder is shipped unchanged to a cluster
(Databricks, EMR) and run with ``spark-submit``. Nothing here imports Airflow or the plugins package.
"""
