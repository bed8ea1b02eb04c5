#!/bin/bash
# First start of the postgres container only: the serving database (movielens.serving) beside Airflow's,
# owned by the same user. Its connection is AIRFLOW_CONN_MOVIELENS_SERVING in .env.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE ${MOVIELENS_SERVING_DB:-movielens} OWNER \"$POSTGRES_USER\""
