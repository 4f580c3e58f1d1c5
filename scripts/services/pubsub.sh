# The Pub/Sub emulator (Google Cloud CLI + Java). Sourced by scripts/test-services.sh.
# Exports PUBSUB_EMULATOR_HOST (and GOOGLE_CLOUD_PROJECT); tests marked `pubsub` need it.
SERVICE_MARKER=pubsub
SERVICE_TITLE="Pub/Sub emulator"
SERVICE_HINT="Install the Google Cloud CLI with its Pub/Sub emulator (gcloud components install pubsub-emulator) and Java."

service_start() {
  command -v gcloud >/dev/null 2>&1 || { echo "gcloud CLI not found"; return 1; }
  local port log
  port=$(free_port)
  log=$(mktemp -t pubsub-emulator.XXXXXX)
  # The gcloud wrapper starts a Java child: its own process group, stopped as a group.
  setsid gcloud beta emulators pubsub start --host-port="127.0.0.1:$port" --quiet >"$log" 2>&1 </dev/null &
  track_group $!
  if wait_http "http://127.0.0.1:$port/" 60 $!; then
    export PUBSUB_EMULATOR_HOST="127.0.0.1:$port"
    export GOOGLE_CLOUD_PROJECT="${GOOGLE_CLOUD_PROJECT:-vonage-functions-test}"
    echo "Pub/Sub emulator on $PUBSUB_EMULATOR_HOST"
    return 0
  fi
  echo "the Pub/Sub emulator did not answer; its log:"; tail -20 "$log"; return 1
}
