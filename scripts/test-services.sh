# Sourced by test.sh: start every real component the tests use (scripts/services/*.sh), each on a
# free port, and stop them all on exit whatever happens.
#
# A service file sets SERVICE_MARKER (the pytest marker of the tests that need it), SERVICE_TITLE,
# SERVICE_HINT and defines service_start, which exports the variables the tests read and returns
# non-zero when the component cannot start. It registers what it started with track_group PID (a
# process group, stopped with TERM then KILL) or track_cleanup "COMMAND".
#
# SKIP_SERVICES=firestore,postgres skips some on purpose (SKIP_FIRESTORE=1 is the old spelling).
# Under CI (any non-empty CI) or REQUIRE_ALL_BACKENDS=1 a skipped or failed service ends the run:
# a green run must mean every backend was tested. The names of those not running are exported as
# TEST_SERVICES_MISSING for the pytest guard in tests/conftest.py.

_groups=()
_cleanups=()
TEST_SERVICES_MISSING=""

track_group() { _groups+=("$1"); }
track_cleanup() { _cleanups+=("$1"); }

stop_services() {
  local cmd pgid
  for cmd in "${_cleanups[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done
  for pgid in "${_groups[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  for pgid in "${_groups[@]}"; do
    for _ in $(seq 1 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
}

free_port() {
  # below the ephemeral range, so no client socket takes it before the service binds it
  "$PY" -m tests.fixtures.ports  # test.sh runs from the project folder
}

# wait_http URL SECONDS [PID]: true once URL answers; false on timeout or when PID has died.
wait_http() {
  local url=$1 seconds=$2 pid=${3:-} i
  for i in $(seq 1 $((seconds * 5))); do
    curl -sf "$url" >/dev/null 2>&1 && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.2
  done
  return 1
}

_strict() { [ -n "${CI:-}" ] || [ "${REQUIRE_ALL_BACKENDS:-}" = "1" ]; }

_missing() {
  local marker=$1 title=$2 why=$3 hint=$4
  TEST_SERVICES_MISSING="${TEST_SERVICES_MISSING:+$TEST_SERVICES_MISSING,}$marker"
  cat <<MSG
==========================================================================
 $title NOT RUNNING ($why): every test marked \`$marker\` is SKIPPED
 in this run, so that backend was NOT tested.
 $hint
==========================================================================
MSG
}

start_test_services() {
  local skip=",${SKIP_SERVICES:-},"
  [ "${SKIP_FIRESTORE:-}" = "1" ] && skip="$skip,firestore,"
  if _strict && [ "$skip" != ",," ] && [ "$skip" != ",,," ]; then
    echo "SKIP_SERVICES / SKIP_FIRESTORE are refused under CI or REQUIRE_ALL_BACKENDS=1 (every backend must be tested)"
    return 1
  fi
  local file
  for file in "$(dirname "${BASH_SOURCE[0]}")"/services/*.sh; do
    unset -f service_start
    SERVICE_MARKER="" SERVICE_TITLE="" SERVICE_HINT=""
    # shellcheck disable=SC1090
    source "$file"
    if [[ "$skip" == *",$SERVICE_MARKER,"* ]]; then
      _missing "$SERVICE_MARKER" "$SERVICE_TITLE" "skipped on request" "$SERVICE_HINT"
    elif ! service_start; then
      _missing "$SERVICE_MARKER" "$SERVICE_TITLE" "it could not start" "$SERVICE_HINT"
      if _strict; then echo "CI: refusing to pass without the $SERVICE_TITLE"; return 1; fi
    fi
  done
  export TEST_SERVICES_MISSING
}
