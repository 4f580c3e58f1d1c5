#!/usr/bin/env bash
# Store the credentials deploy.sh mounts in Google Secret Manager, from your environment.
#
#   export VONAGE_API_KEY=... VONAGE_API_SECRET=... API_TOKENS=tok1,tok2 ...
#   scripts/gcp-secrets.sh --project PROJECT_ID [--secret-prefix PREFIX] [--dry-run]
#
# For each of VONAGE_API_KEY VONAGE_API_SECRET VONAGE_APPLICATION_ID VONAGE_PRIVATE_KEY
# VONAGE_SIGNATURE_SECRET API_TOKENS WEBHOOK_TOKEN that is set, creates the secret
# (PREFIX + the name in lower case with '-' for '_': vonage-api-secret) or adds a new
# version when it exists. VONAGE_PRIVATE_KEY may hold the key itself or the path of the
# key file. Values go to gcloud on stdin: never on a command line, never printed.
# Variables that are not set are left alone. Redeploy (./deploy.sh) to pick up changes.
set -euo pipefail

VARIABLES=(VONAGE_API_KEY VONAGE_API_SECRET VONAGE_APPLICATION_ID VONAGE_PRIVATE_KEY VONAGE_SIGNATURE_SECRET API_TOKENS WEBHOOK_TOKEN)
PROJECT="${CLOUDSDK_CORE_PROJECT:-}"
PREFIX=""
DRY_RUN=0
while [[ $# -gt 0 ]]; do
  opt="$1"
  if [[ "$opt" == --*=* ]]; then set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; opt="$1"; fi
  case "$opt" in
    --project) PROJECT="${2:?--project needs a value}"; shift 2 ;;
    --secret-prefix) PREFIX="${2-}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gcp-secrets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$PROJECT" ]] || { echo "gcp-secrets.sh: pass --project PROJECT_ID" >&2; exit 2; }
[[ "$PREFIX" =~ ^[A-Za-z0-9_-]*$ ]] || { echo "gcp-secrets.sh: bad --secret-prefix" >&2; exit 2; }
if (( ! DRY_RUN )); then
  command -v gcloud >/dev/null 2>&1 || { echo "gcp-secrets.sh: gcloud is not installed (https://cloud.google.com/sdk/docs/install)" >&2; exit 2; }
  [[ -n "$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)" ]] \
    || { echo "gcp-secrets.sh: gcloud is not logged in: run gcloud auth login" >&2; exit 2; }
fi

show() { printf '+ %s\n' "$*"; }
run() { show "$*"; (( DRY_RUN )) || "$@"; }

run gcloud services enable secretmanager.googleapis.com "--project=$PROJECT" --quiet

stored=0
for var in "${VARIABLES[@]}"; do
  [[ -n "${!var:-}" ]] || continue
  lower="${var,,}"
  name="$PREFIX${lower//_/-}"
  source_args=(--data-file=-)
  value="${!var}"
  if [[ "$var" == VONAGE_PRIVATE_KEY && "$value" != *"-----BEGIN"* && -f "$value" ]]; then
    source_args=("--data-file=$value")  # a key file: gcloud reads it itself
  fi
  if (( DRY_RUN )); then
    show "gcloud secrets create $name --project=$PROJECT --replication-policy=automatic ${source_args[*]} --quiet  # or 'secrets versions add' when it exists; value from \$$var"
    stored=$((stored + 1))
    continue
  fi
  if gcloud secrets describe "$name" "--project=$PROJECT" >/dev/null 2>&1; then
    cmd=(gcloud secrets versions add "$name" "--project=$PROJECT" "${source_args[@]}" --quiet)
  else
    cmd=(gcloud secrets create "$name" "--project=$PROJECT" --replication-policy=automatic "${source_args[@]}" --quiet)
  fi
  show "${cmd[*]}  # value from \$$var"
  if [[ "${source_args[0]}" == --data-file=- ]]; then
    printf '%s' "$value" | "${cmd[@]}" >/dev/null
  else
    "${cmd[@]}" >/dev/null
  fi
  stored=$((stored + 1))
done
unset value

if (( stored == 0 )); then
  echo "gcp-secrets.sh: none of ${VARIABLES[*]} is set in the environment: nothing to store" >&2
  exit 1
fi
echo "==> $stored secret(s) stored in $PROJECT. Next: ./deploy.sh --project $PROJECT"
