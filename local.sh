#!/usr/bin/env bash
# Everything, locally, on embedded defaults: every function + a local Vonage sandbox + SQLite.
# Usage: ./local.sh          serve on http://127.0.0.1:8080 (PORT), sandbox on :8025 (SANDBOX_PORT)
#        ./local.sh demo     walk the whole loop (send, receipt, inbound, STOP, verify) and exit
#        ./local.sh reset    say what it removes, then wipe the local state (.data/*.sqlite3:
#                            messages, inbound, opt-outs, verifications); .data/local-token is kept
# The API token is created once in .data/local-token: export TOKEN=$(cat .data/local-token)
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/venv.sh requirements.txt
exec "$PY" -m sandbox.local "$@"
