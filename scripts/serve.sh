#!/usr/bin/env bash
# Serve every function from one process with gunicorn, a production WSGI server:
# Replit deployments (.replit runs this), a VM, a container, any host with one port.
#
#   PORT=8080 scripts/serve.sh
#
# Binds 0.0.0.0:$PORT (default 8080): /send, /verify-start, /verify-check,
# /verify-cancel, /inbound, /status, /healthz and /readyz (app.py).
# WEB_CONCURRENCY worker processes (default 1) x THREADS threads each (default 8).
# State: PostgreSQL when DATABASE_URL is set (Replit's database), Firestore when configured,
# else SQLite (warned about on a Replit deployment: see docs/postgres.md).
# GOOGLE_CREDENTIALS_JSON (a service-account key, e.g. a Replit Secret) is written to a
# private file and named by GOOGLE_APPLICATION_CREDENTIALS, for the Firestore client.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${PORT:-8080}"
WORKERS="${WEB_CONCURRENCY:-1}"
THREADS="${THREADS:-8}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "serve.sh: PORT must be a number, not '$PORT'" >&2; exit 2; }
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "serve.sh: WEB_CONCURRENCY must be a positive number" >&2; exit 2; }
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "serve.sh: THREADS must be a positive number" >&2; exit 2; }

if [[ -n "${GOOGLE_CREDENTIALS_JSON:-}" && -z "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]]; then
  key_dir="${XDG_RUNTIME_DIR:-/tmp}/vonage-functions-$(id -u)"
  mkdir -p "$key_dir"
  chmod 700 "$key_dir"
  # umask first: the key file never exists with wider permissions, not even for a moment.
  ( umask 077; printf '%s' "$GOOGLE_CREDENTIALS_JSON" > "$key_dir/google-credentials.json" )
  export GOOGLE_APPLICATION_CREDENTIALS="$key_dir/google-credentials.json"
fi

# Where state lives, as shared/config.py chooses it: STATE_BACKEND, else Firestore when its
# emulator is named, else PostgreSQL when DATABASE_URL is set (Replit sets it once the Repl has a
# database), else SQLite.
backend="$(printf '%s' "${STATE_BACKEND:-}" | tr -d '[:space:]' | tr '[:upper:]' '[:lower:]')"
if [[ -z "$backend" ]]; then
  emulator="${FIRESTORE_EMULATOR_HOST:-}" database_url="${DATABASE_URL:-}"
  if [[ -n "${emulator// /}" ]]; then backend=firestore
  elif [[ -n "${database_url// /}" ]]; then backend=postgres
  else backend=sqlite; fi
fi

# An Autoscale deployment runs several short-lived copies, each with its own disk: state
# kept in SQLite there is neither shared nor kept. Say so loudly rather than lose receipts.
if [[ "${REPLIT_DEPLOYMENT:-}" == "1" && "$backend" == "sqlite" ]]; then
  echo "serve.sh: WARNING: this Replit deployment keeps its state in SQLite on a disk that is" \
       "not shared between instances nor kept across restarts. Add a PostgreSQL database to the" \
       "Repl (Replit then sets DATABASE_URL) or set STATE_BACKEND=firestore (see docs/postgres.md and docs/deploying/replit.md)." >&2
fi

PY="python3"
[[ -x .venv/bin/python ]] && PY=".venv/bin/python"
[[ -n "${PYTHON:-}" ]] && PY="$PYTHON"

# gunicorn retries a busy port for a while and then ends with a bare "Can't connect": say
# which setting to change instead. "Busy" means something already listens there (a connection
# is accepted); a port held for a moment by an outgoing connection is left to gunicorn's own
# retries, as before (a bind probe refused it at once, and failed the tests now and then).
if ! "$PY" - "$PORT" <<'PYCHECK' 2>/dev/null
import socket, sys
with socket.socket() as probe:
    probe.settimeout(1.0)
    sys.exit(1 if probe.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 0)  # 1: a listener is there
PYCHECK
then
  echo "serve.sh: port $PORT (PORT) is already in use: stop what uses it, or choose another port," \
       "e.g. PORT=$((PORT + 1)) scripts/serve.sh" >&2
  exit 2
fi

# gthread workers keep answering health checks while a long bulk send runs in another
# thread; --timeout only bounds a worker that stops responding altogether.
exec "$PY" -m gunicorn \
  --bind "0.0.0.0:$PORT" \
  --workers "$WORKERS" \
  --worker-class gthread \
  --threads "$THREADS" \
  --timeout "${GUNICORN_TIMEOUT:-120}" \
  --graceful-timeout 20 \
  --log-level "${GUNICORN_LOG_LEVEL:-info}" \
  app:app
