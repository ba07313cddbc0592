#!/usr/bin/env bash
# The evaluation service in one command: migrate the results database, then fire due schedules as Ray jobs until
# stopped (Ctrl-C / SIGTERM).
#
#   services/evaluation/run.sh                      # embedded defaults under ~/.mor (local Ray, SQLite, MLflow)
#   services/evaluation/run.sh --once               # fire what is due now, then exit (e.g. from a system cron)
#
# Settings come from the environment, or from services/evaluation/service.env when it exists (copy
# service.env.example). Any extra arguments go to `mor eval serve` (--address, --owner-id, --poll, ...).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -f "${MOR_SERVICE_ENV:-$here/service.env}" ]]; then
  set -a
  # shellcheck disable=SC1090
  source "${MOR_SERVICE_ENV:-$here/service.env}"
  set +a
fi

mor="${MOR_BIN:-$(command -v mor || echo "$here/../../.venv/bin/mor")}"
if [[ ! -x "$mor" ]]; then
  echo "mor: not found on PATH nor in .venv; install the project (pip install -e .) or set MOR_BIN" >&2
  exit 127
fi

"$mor" db upgrade
exec "$mor" eval serve "$@"
