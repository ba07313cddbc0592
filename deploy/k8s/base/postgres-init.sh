#!/usr/bin/env bash
# First start of the PostgreSQL container (empty data volume): one role and one database each for the MLflow
# backend store (mlflow) and mor's results (mor). Passwords come from the container's environment.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" -v mor_password="$RESULTS_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE ROLE mor LOGIN PASSWORD :'mor_password';
CREATE DATABASE mor OWNER mor;
SQL
