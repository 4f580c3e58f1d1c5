# The Cloud Tasks emulator (gcloud-tasks-emulator from PyPI). Sourced by scripts/test-services.sh.
# It pins an old protobuf, so it lives in its own venv (.cache/tasks-venv), created on first use.
# Exports CLOUD_TASKS_EMULATOR_HOST; tests marked `cloudtasks` need it. Started with
# --max-retries: without it the emulator retries a failing task every ~0.1 s forever.
SERVICE_MARKER=cloudtasks
SERVICE_TITLE="Cloud Tasks emulator"
SERVICE_HINT="It installs itself into .cache/tasks-venv (python3 -m venv + pip from PyPI: gcloud-tasks-emulator==0.6.2)."
CLOUD_TASKS_EMULATOR_PIN="gcloud-tasks-emulator==0.6.2"

service_start() {
  local root venv port log
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$root/.cache/tasks-venv"
  if [ ! -x "$venv/bin/gcloud-tasks-emulator" ] || [ "$(cat "$venv/.pin" 2>/dev/null)" != "$CLOUD_TASKS_EMULATOR_PIN" ]; then
    echo "installing $CLOUD_TASKS_EMULATOR_PIN into $venv"
    python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q "$CLOUD_TASKS_EMULATOR_PIN" \
      && echo "$CLOUD_TASKS_EMULATOR_PIN" >"$venv/.pin" || { echo "could not install the emulator"; return 1; }
  fi
  port=$(free_port)
  log=$(mktemp -t cloudtasks-emulator.XXXXXX)
  setsid "$venv/bin/gcloud-tasks-emulator" start --port "$port" --max-retries 5 --quiet >"$log" 2>&1 </dev/null &
  track_group $!
  # It speaks gRPC only: wait until the port accepts connections.
  if "$PY" - "$port" <<'PYCODE'
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PYCODE
  then
    export CLOUD_TASKS_EMULATOR_HOST="127.0.0.1:$port"
    echo "Cloud Tasks emulator on $CLOUD_TASKS_EMULATOR_HOST"
    return 0
  fi
  echo "the Cloud Tasks emulator did not start; its log:"; tail -20 "$log"; return 1
}
