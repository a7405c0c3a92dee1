#!/usr/bin/env bash
# Start the web server and one django-q2 worker side by side. Ctrl-C, a TERM, or either
# one dying stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
GRACE_SECONDS=${GRACE_SECONDS:-15}
groups=()

alive() {
  local g
  for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && return 0; done
  return 1
}

stop() {
  trap - INT TERM EXIT
  # Each child leads its own process group, so its helpers (qcluster's worker
  # processes, gunicorn's workers) get the signal too, whoever sent ours.
  local g
  for g in "${groups[@]}"; do kill -INT -- "-$g" 2>/dev/null || true; done
  for _ in $(seq $((GRACE_SECONDS * 4))); do alive || return 0; sleep 0.25; done
  echo "still running after ${GRACE_SECONDS}s; killing" >&2
  for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

setsid .venv/bin/python manage.py qcluster &
groups+=($!)
setsid .venv/bin/gunicorn config.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
  --timeout 300 --access-logfile - &
groups+=($!)
echo "Serving on http://$HOST:$PORT/ with one worker. Ctrl-C stops both."
wait -n || true
