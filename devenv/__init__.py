"""Development tooling, never shipped in the Docker image: the embedded default's local Airflow
(:mod:`.local_airflow`), its SMTP server (:mod:`.mailbox`) and ``python -m devenv demo|ui`` (:mod:`.cli`).

The runtime package is ``plugins/movielens``; it never imports this one.
"""
