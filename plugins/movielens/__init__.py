"""movielens-platform: the importable package behind the DAGs (Airflow puts plugins/ on sys.path)."""
