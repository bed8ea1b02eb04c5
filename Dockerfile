# The project's Airflow image: Airflow 3.3.2 on Python 3.11 with the exact runtime lock (requirements.lock: no test
# or development packages), Java for local Spark, and the project's DAGs, plugins, Spark jobs and suites.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
COPY --chown=airflow:root requirements.lock /opt/movielens/requirements.lock
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --no-cache --python "$(command -v python)" -r /opt/movielens/requirements.lock

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root spark_jobs/ /opt/movielens/spark_jobs/
COPY --chown=airflow:root expectations/ /opt/movielens/expectations/
ENV PYTHONPATH=/opt/airflow/plugins:/opt/movielens \
    MOVIELENS_SPARK_JOBS_DIR=/opt/movielens/spark_jobs
