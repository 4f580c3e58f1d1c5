#!/usr/bin/env bash
# Mutation testing of the core modules (not part of CI): see scripts/mutation.py and docs/testing.md.
# Usage: scripts/mutation.sh [--module shared/phone.py] [--max 40] [--seed 19] [--list]
set -euo pipefail
cd "$(dirname "$0")/.."
source ./scripts/venv.sh requirements-dev.txt
exec "$PY" scripts/mutation.py "$@"
