#!/usr/bin/env bash
# The whole test suite, on a fresh machine: venv + pinned deps, the Firestore emulator
# on a free port, pytest, and the emulator stopped again whatever happens.
# Usage: ./test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/venv.sh requirements-dev.txt

emulator_pid=""
stop_emulator() {
  if [ -n "$emulator_pid" ]; then
    # The gcloud wrapper starts a Java child; kill the whole process group or the port stays taken.
    kill -TERM -- "-$emulator_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$emulator_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$emulator_pid" 2>/dev/null || true
  fi
}
trap stop_emulator EXIT INT TERM

start_emulator() {
  if ! command -v gcloud >/dev/null 2>&1; then
    echo "gcloud CLI not found"; return 1
  fi
  local port log
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp -t firestore-emulator.XXXXXX)
  setsid gcloud emulators firestore start --host-port="127.0.0.1:$port" --quiet >"$log" 2>&1 < /dev/null &
  emulator_pid=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; then
      export FIRESTORE_EMULATOR_HOST="127.0.0.1:$port"
      export GOOGLE_CLOUD_PROJECT="${GOOGLE_CLOUD_PROJECT:-vonage-functions-test}"
      echo "Firestore emulator on $FIRESTORE_EMULATOR_HOST"
      return 0
    fi
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "the emulator did not answer; its log:"; tail -20 "$log"; return 1
}

if [ "${SKIP_FIRESTORE:-}" = "1" ]; then
  echo "SKIP_FIRESTORE=1: Firestore tests will be skipped"
elif ! start_emulator; then
  cat <<'MSG'
==========================================================================
 FIRESTORE EMULATOR COULD NOT START: every test marked `firestore` (the
 store contract suite on Firestore, concurrency races on Firestore) is
 SKIPPED in this run. Only the embedded SQLite store was tested.
 Install the Google Cloud CLI with its Firestore emulator and Java to test it.
==========================================================================
MSG
  if [ "${CI:-}" = "true" ]; then echo "CI=true: refusing to pass without Firestore"; exit 1; fi
fi

set +e
"$PY" -m pytest "$@"
status=$?
set -e
exit $status
