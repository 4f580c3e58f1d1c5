#!/usr/bin/env bash
# The whole test suite, on a fresh machine: venv + pinned deps, every real component the tests use
# (scripts/services/: the Firestore emulator, ...) on free ports, pytest, and the components
# stopped again whatever happens.
# Usage: ./test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/venv.sh requirements-dev.txt
source ./scripts/test-services.sh
trap stop_services EXIT INT TERM

start_test_services

set +e
"$PY" -m pytest "$@"
status=$?
set -e
exit $status
