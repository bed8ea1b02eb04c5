"""Development tooling, never shipped in the Docker image: the embedded default's local Airflow
(:mod:`.local_airflow`), its SMTP server (:mod:`.mailbox`), ``python -m devenv demo|ui`` (:mod:`.cli`), and
the archive of Spark's classes that the tests' JVMs map (:mod:`.spark_classes`).

The runtime package is ``plugins/movielens``; it never imports this one.
"""
