#!/usr/bin/env bash
# Deploy every function to Google Cloud (Cloud Run functions, 2nd gen) from this one
# source tree, each with its own entry point. `./deploy.sh --help` explains it all;
# `./deploy.sh --dry-run` prints every command and runs none.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- what gets deployed --------------------------------------------------------
# Entry points exported by main.py. The deployed name is NAME_PREFIX + the entry
# point with '_' turned into '-' (Cloud Run service names allow no '_'), which is
# also the path the one-process app (app.py) mounts it at.
ALL_FUNCTIONS=(send verify_start verify_check verify_cancel verify_next inbound status balance)
# Vonage calls these and cannot present Google credentials: always public, never
# scaled to zero (Vonage gives a webhook ~3 s to connect; a cold start can take longer).
WEBHOOK_FUNCTIONS=(inbound status)

# Firestore deletes a document of these collections once its TTL_FIELD has passed
# (shared/store/base.py: TTL_FIELD). This is every collection written with a ttl in
# shared/ (`grep -rn "ttl=" shared/`); tests/deploy/test_firestore_layout.py fails when
# one is missing. Expiry is also checked in code: TTL deletion can lag by a day.
TTL_FIELD="expire_at"
TTL_COLLECTIONS=(budgets events_outbox events_processed idempotency inbound_parts message_ids queue_tasks ratelimits verifications webhook_events)

# Composite indexes the queries in shared/ need on Firestore (an equality filter on one
# field ordered by another), one per entry: "collection field:order[,field:order...]".
# tests/deploy/test_firestore_layout.py fails when a query in shared/ has none here.
COMPOSITE_INDEXES=(
  "inbound from:ascending,received_at:descending"  # inbound listing ?number= (sender)
  "inbound to:ascending,received_at:descending"    # inbound listing ?number= (recipient)
  "queue_tasks state:ascending,due_at:ascending"   # embedded queue: the next due tasks
  "queue_tasks state:ascending,lease_until:ascending"  # embedded queue: leases run out
  "batch_recipients page:ascending,index:ascending"    # GET /send/<batch_id>: one page of results
)

# Secret Manager: one secret per credential. The secret name is SECRET_PREFIX + the
# variable name in lower case with '_' turned into '-' (VONAGE_API_SECRET ->
# vonage-api-secret). Each function gets the credentials that exist, plus its own:
CREDENTIAL_SECRETS=(VONAGE_API_KEY VONAGE_API_SECRET VONAGE_APPLICATION_ID VONAGE_PRIVATE_KEY VONAGE_SIGNATURE_SECRET)
CALLER_SECRETS=(API_TOKENS)      # send, verify-*: the bearer tokens of our callers
WEBHOOK_SECRETS=(WEBHOOK_TOKEN)  # inbound, status: optional shared token in the webhook URL

# Events (--events PREFIX; docs/events.md): one Pub/Sub topic per event type, named
# PREFIX-<type>, plus PREFIX-dead-letter; consumers are CloudEvent entry points of main.py,
# each with its trigger: a push subscription (ordering per conversation, retry policy,
# dead-letter topic) to the consumer, authenticated with an OIDC token. An Eventarc
# --trigger-topic cannot enable message ordering, so the subscription is ours.
EVENT_TOPICS=(message-inbound message-status verify-completed optout batch-completed account-balance-low)
CONSUMERS=(on_inbound)
consumer_topic() {  # the topic (suffix) a consumer subscribes to
  case "$1" in
    on_inbound) echo message-inbound ;;
  esac
}
EVENT_MAX_DELIVERY_ATTEMPTS=10  # then the event goes to PREFIX-dead-letter
EVENT_MIN_RETRY_DELAY=10s
EVENT_MAX_RETRY_DELAY=600s
EVENT_ACK_DEADLINE=120          # seconds: the consumer's timeout plus margin

REQUIRED_SERVICES=(
  cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com secretmanager.googleapis.com firestore.googleapis.com
)

# ---- defaults (each one an option below) -----------------------------------------
PROJECT="${CLOUDSDK_CORE_PROJECT:-}"
REGION="${CLOUDSDK_FUNCTIONS_REGION:-us-central1}"
FUNCTIONS_ARG=""
BALANCE_SCHEDULE=""  # --balance-schedule: a Cloud Scheduler job runs the balance function (docs/money-safety.md)
RUNTIME="python312"
CONCURRENCY=8
MEMORY="512Mi"
WEBHOOK_MIN_INSTANCES=1
MAX_INSTANCES=10
PRIVATE=0
NAME_PREFIX="vonage-"
SECRET_PREFIX=""
SECRETS_ARG=""
SECRETS_GIVEN=0
COLLECTION_PREFIX=""
COLLECTION_PREFIX_GIVEN=0
ENV_FILE=""
SERVICE_ACCOUNT=""
FIRESTORE_LOCATION=""
SKIP_SETUP=0
FIRESTORE_ONLY=0
SET_VONAGE_WEBHOOKS=0
SET_SMS_WEBHOOKS=0
DRY_RUN=0
EVENTS_PREFIX=""
# The Cloud Tasks queue of bulk and scheduled sends (docs/queue.md); off unless --queue.
QUEUE_NAME=""
QUEUE_RPS=""
QUEUE_MAX_CONCURRENT=30
QUEUE_MAX_ATTEMPTS=10
QUEUE_MIN_BACKOFF=1
QUEUE_MAX_BACKOFF=300

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [options]

Deploys the functions of this repository to Google Cloud as Cloud Run functions
(2nd gen, `gcloud functions deploy --gen2`), one function per entry point of main.py,
all from this one source tree:

  function (deployed name)   entry point     who calls it          Google-level access
  vonage-send                send            your apps (bearer)    public (--private: IAM)
  vonage-verify-start        verify_start    your apps (bearer)    public (--private: IAM)
  vonage-verify-check        verify_check    your apps (bearer)    public (--private: IAM)
  vonage-verify-cancel       verify_cancel   your apps (bearer)    public (--private: IAM)
  vonage-verify-next         verify_next     your apps (bearer)    public (--private: IAM)
  vonage-inbound             inbound         Vonage (webhook)      public, min instances >= 1
  vonage-status              status          Vonage (webhook)      public, min instances >= 1

What a run does, in order (every command is printed before it runs):
  1. checks that gcloud is installed and logged in, finds the project, and enables
     the Google APIs it needs (skipped with --skip-setup);
  2. finds which secrets exist in Secret Manager (one per credential, named below)
     and stops when a required one is missing; then creates the Firestore database if
     missing, sets a Firestore TTL policy on `expire_at` for every collection that
     expires, creates the composite indexes the queries need, and lets the functions'
     service account read the secrets and use Firestore (skipped with --skip-setup);
  3. deploys each function: runtime, region, entry point, HTTP trigger, memory/CPU,
     concurrency with a matching THREADS, timeout, min/max instances, environment
     (STATE_BACKEND=firestore ...), secrets (--set-secrets) and access;
  4. prints each function's URL and the inbound and status webhook URLs to set in the
     Vonage dashboard; --set-vonage-webhooks / --set-sms-webhooks set them for you.
  With --events PREFIX, between 3 and 4: the Pub/Sub topics, a dead-letter topic, the
     consumer functions (on_inbound) and their push subscriptions (see --events).

Options:
  --project ID            Google Cloud project (default: $CLOUDSDK_CORE_PROJECT, else
                          `gcloud config get-value project`)
  --region REGION         region of the functions (default: us-central1)
  --functions LIST        comma-separated functions to deploy (default: all). Names as
                          entry points or paths: send,verify_start or send,verify-start
  --runtime RUNTIME       Python runtime (default: python312; the code needs 3.11+)
  --concurrency N         requests one instance serves at once (default: 8); THREADS is
                          set to the same N so the server has a thread per request.
                          N > 1 needs a whole vCPU, so --cpu=1 is set with it
  --memory SIZE           memory per instance (default: 512Mi)
  --min-instances N       minimum instances of the webhook functions (default: 1;
                          0 saves money but a cold start may miss Vonage's 3 s connect window)
  --max-instances N       maximum instances of each function (default: 10). This also
                          caps the send rate: each instance paces itself to VONAGE_MAX_RPS
  --balance-schedule CRON create (or update) a Cloud Scheduler job that calls the
                          balance function on CRON, e.g. "0 * * * *" (hourly), with the
                          first API token (read from Secret Manager, never printed)
  --private               deploy send and verify-* with --no-allow-unauthenticated:
                          callers then need a Google ID token (roles/run.invoker) as
                          well as a bearer token. Webhooks stay public (Vonage cannot
                          send Google credentials)
  --name-prefix PREFIX    prefix of the deployed names (default: vonage-)
  --secret-prefix PREFIX  prefix of the Secret Manager secret names (default: none),
                          e.g. staging- for staging-vonage-api-key
  --secrets LIST          comma-separated variables to mount from Secret Manager,
                          instead of mounting every one of them that exists
  --collection-prefix P   FIRESTORE_COLLECTION_PREFIX: prefix of every Firestore
                          collection (TTL policies follow it), to share one database
  --env-file FILE         more environment variables (KEY=VALUE lines, # comments), e.g.
                          VONAGE_BRAND_NUMBER, DEFAULT_REGION, VERIFY_ALLOWED_COUNTRIES.
                          Default: ./deploy.env when it exists. Secrets are refused here.
  --service-account EMAIL run the functions as this service account (default: the
                          project's default compute service account)
  --firestore-location L  location of the Firestore database if it has to be created
                          (default: the region)
  --skip-setup            skip the APIs, Firestore database, TTL, indexes and IAM steps
                          (for redeploys of code by someone without admin rights)
  --firestore-only        only create the Firestore database, its TTL policies and its
                          indexes, and deploy nothing: for Replit, AWS Lambda or any host
                          outside Google Cloud that keeps its state in this project
  --set-vonage-webhooks   set the Vonage application's Messages inbound/status URLs and
                          its Verify status URL through the Applications API
                          (needs VONAGE_APPLICATION_ID, VONAGE_API_KEY, VONAGE_API_SECRET
                          in the environment or in Secret Manager)
  --set-sms-webhooks      set the account-wide SMS API inbound (moCallbackUrl) and
                          delivery-receipt (drCallbackUrl) URLs through the Account API
  --events PREFIX         publish every webhook outcome as a CloudEvent on Pub/Sub
                          (docs/events.md): creates the topics PREFIX-message-inbound,
                          PREFIX-message-status, PREFIX-verify-completed, PREFIX-optout,
                          PREFIX-batch-completed, PREFIX-account-balance-low and
                          PREFIX-dead-letter (kept 7 days by
                          the subscription PREFIX-dead-letter-hold), sets
                          PUBSUB_TOPIC_PREFIX=PREFIX on every function (so the inbound
                          webhook answers at once and the reply goes out from the bus),
                          deploys the consumer vonage-on-inbound (private) and its trigger:
                          the push subscription PREFIX-on-inbound with message ordering, a
                          retry policy (10s to 600s backoff) and, after 10 attempts, the
                          dead-letter topic
  --queue NAME            bulk and scheduled sends through the Cloud Tasks queue NAME
                          (docs/queue.md): creates or updates the queue, a service account
                          <name-prefix>tasks whose OIDC token the tasks carry, and deploys
                          the deliver function PRIVATE (only that account may invoke it)
  --queue-rps N           the queue's --max-dispatches-per-second: the account's rate across
                          every instance (default: VONAGE_MAX_RPS from the env file, else 30)
  --queue-max-concurrent N  dispatches in flight at once (default: 30)
  --queue-max-attempts N  attempts per task before deliver records it failed (default: 10)
  --queue-min-backoff S   seconds before the first retry (default: 1)
  --queue-max-backoff S   longest wait between retries (default: 300)
  --dry-run               print every command and run none (needs neither gcloud nor a
                          login; unknown values are printed as placeholders)
  -h, --help              this help

Secrets (create each once; the functions read the latest version at start-up):
  vonage-api-key, vonage-api-secret        SMS API, legacy Verify, Basic auth
  vonage-application-id, vonage-private-key Messages API and Verify v2 (JWT)
  vonage-signature-secret                  verifies signed webhooks (inbound, status)
  api-tokens                               comma-separated bearer tokens (send, verify-*)
  webhook-token                            optional: token in the webhook URLs
  Either the key and secret, or the application id and private key, are required;
  api-tokens is required for send and verify-*. Create one with, for example:
    printf %s "$VALUE" | gcloud secrets create vonage-api-secret --data-file=-
  and, after a change, add a version the same way with `gcloud secrets versions add`.

Exit status: 0 done; 1 a command or a check failed; 2 bad usage, gcloud missing or
not logged in.
EOF
}

# ---- small helpers ---------------------------------------------------------------
die() { printf 'deploy.sh: error: %s\n' "$1" >&2; exit "${2:-1}"; }
note() { printf '==> %s\n' "$*"; }
warn() { printf 'deploy.sh: warning: %s\n' "$*" >&2; WARNINGS+=("$*"); }
WARNINGS=()

# Shell-quote a command so the printed line can be pasted into a shell as is.
quote() {
  local out="" arg
  for arg in "$@"; do
    if [[ -z "$arg" ]]; then
      arg="''"
    elif [[ ! "$arg" =~ ^[-A-Za-z0-9_@%+=:,./^]+$ ]]; then
      arg="'${arg//\'/\'\\\'\'}'"
    fi
    out+="${out:+ }$arg"
  done
  printf '%s' "$out"
}

# Print a command, then run it (not with --dry-run).
run() {
  printf '+ %s\n' "$(quote "$@")"
  if (( DRY_RUN )); then return 0; fi
  "$@"
}

# Like run, but a failure is a warning, not the end (e.g. a TTL policy that exists).
run_soft() {
  if ! run "$@"; then
    warn "this command failed; the deployment goes on: $(quote "$@")"
  fi
}

# capture VAR PLACEHOLDER cmd...: print the command, run it and store its output in
# VAR; with --dry-run store PLACEHOLDER instead.
capture() {
  local __var="$1" __placeholder="$2" __out
  shift 2
  printf '+ %s\n' "$(quote "$@")"
  if (( DRY_RUN )); then
    printf -v "$__var" '%s' "$__placeholder"
    return 0
  fi
  __out="$("$@")" || return 1
  printf -v "$__var" '%s' "$__out"
}

secret_name() {  # VONAGE_API_SECRET -> [prefix]vonage-api-secret
  local lower="${1,,}"
  printf '%s%s' "$SECRET_PREFIX" "${lower//_/-}"
}

deployed_name() {  # verify_start -> vonage-verify-start
  printf '%s%s' "$NAME_PREFIX" "${1//_/-}"
}

is_webhook() {
  local fn
  for fn in "${WEBHOOK_FUNCTIONS[@]}"; do [[ "$fn" == "$1" ]] && return 0; done
  return 1
}

contains() {  # contains NEEDLE WORDS...
  local needle="$1" item
  shift
  for item in "$@"; do [[ "$item" == "$needle" ]] && return 0; done
  return 1
}

is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

# The last words of a run: done, or every warning again so none scrolls away unseen.
finish() {
  if (( ${#WARNINGS[@]} )); then
    printf '\n==> finished with %d warning(s):\n' "${#WARNINGS[@]}"
    printf '    - %s\n' "${WARNINGS[@]}"
  else
    printf '\n==> done%s\n' "$( (( DRY_RUN )) && printf ' (dry run: nothing was run)')"
  fi
}

# ---- options ---------------------------------------------------------------------
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)" 2; }

while [[ $# -gt 0 ]]; do
  opt="$1"
  value=""
  if [[ "$opt" == --*=* ]]; then
    value="${opt#*=}"
    opt="${opt%%=*}"
    set -- "$opt" "$value" "${@:2}"
  fi
  case "$opt" in
    --project) need_value "$@"; PROJECT="$2"; shift 2 ;;
    --region) need_value "$@"; REGION="$2"; shift 2 ;;
    --functions) need_value "$@"; FUNCTIONS_ARG="$2"; shift 2 ;;
    --balance-schedule) need_value "$@"; BALANCE_SCHEDULE="$2"; shift 2 ;;
    --runtime) need_value "$@"; RUNTIME="$2"; shift 2 ;;
    --concurrency) need_value "$@"; CONCURRENCY="$2"; shift 2 ;;
    --memory) need_value "$@"; MEMORY="$2"; shift 2 ;;
    --min-instances) need_value "$@"; WEBHOOK_MIN_INSTANCES="$2"; shift 2 ;;
    --max-instances) need_value "$@"; MAX_INSTANCES="$2"; shift 2 ;;
    --private) PRIVATE=1; shift ;;
    --name-prefix) [[ $# -ge 2 ]] || die "--name-prefix needs a value" 2; NAME_PREFIX="$2"; shift 2 ;;
    --secret-prefix) [[ $# -ge 2 ]] || die "--secret-prefix needs a value" 2; SECRET_PREFIX="$2"; shift 2 ;;
    --secrets) [[ $# -ge 2 ]] || die "--secrets needs a value" 2; SECRETS_ARG="$2"; SECRETS_GIVEN=1; shift 2 ;;
    --collection-prefix) [[ $# -ge 2 ]] || die "--collection-prefix needs a value" 2; COLLECTION_PREFIX="$2"; COLLECTION_PREFIX_GIVEN=1; shift 2 ;;
    --env-file) need_value "$@"; ENV_FILE="$2"; shift 2 ;;
    --service-account) need_value "$@"; SERVICE_ACCOUNT="$2"; shift 2 ;;
    --firestore-location) need_value "$@"; FIRESTORE_LOCATION="$2"; shift 2 ;;
    --skip-setup) SKIP_SETUP=1; shift ;;
    --firestore-only) FIRESTORE_ONLY=1; shift ;;
    --set-vonage-webhooks) SET_VONAGE_WEBHOOKS=1; shift ;;
    --set-sms-webhooks) SET_SMS_WEBHOOKS=1; shift ;;
    --events) need_value "$@"; EVENTS_PREFIX="$2"; shift 2 ;;
    --queue) need_value "$@"; QUEUE_NAME="$2"; shift 2 ;;
    --queue-rps) need_value "$@"; QUEUE_RPS="$2"; shift 2 ;;
    --queue-max-concurrent) need_value "$@"; QUEUE_MAX_CONCURRENT="$2"; shift 2 ;;
    --queue-max-attempts) need_value "$@"; QUEUE_MAX_ATTEMPTS="$2"; shift 2 ;;
    --queue-min-backoff) need_value "$@"; QUEUE_MIN_BACKOFF="$2"; shift 2 ;;
    --queue-max-backoff) need_value "$@"; QUEUE_MAX_BACKOFF="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" 2 ;;
  esac
done

# ---- validate --------------------------------------------------------------------
is_count "$CONCURRENCY" && (( CONCURRENCY >= 1 && CONCURRENCY <= 1000 )) \
  || die "--concurrency must be a whole number from 1 to 1000" 2
is_count "$WEBHOOK_MIN_INSTANCES" || die "--min-instances must be a whole number" 2
is_count "$MAX_INSTANCES" && (( MAX_INSTANCES >= 1 )) || die "--max-instances must be at least 1" 2
(( WEBHOOK_MIN_INSTANCES <= MAX_INSTANCES )) || die "--min-instances cannot be above --max-instances" 2
(( FIRESTORE_ONLY && SKIP_SETUP )) && die "--firestore-only and --skip-setup exclude each other" 2
[[ "$RUNTIME" =~ ^python3[0-9]+$ ]] || die "--runtime must be a Python runtime such as python312" 2
[[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "--region does not look like a region (e.g. europe-west1)" 2
[[ "$NAME_PREFIX" =~ ^[a-z0-9-]*$ ]] || die "--name-prefix may hold only lower-case letters, digits and '-'" 2
[[ "$SECRET_PREFIX" =~ ^[A-Za-z0-9_-]*$ ]] || die "--secret-prefix may hold only letters, digits, '_' and '-'" 2
[[ "$COLLECTION_PREFIX" =~ ^[A-Za-z0-9_-]*$ ]] || die "--collection-prefix may hold only letters, digits, '_' and '-'" 2
[[ -z "$EVENTS_PREFIX" || "$EVENTS_PREFIX" =~ ^[a-z][a-z0-9-]{2,200}$ ]] \
  || die "--events needs a topic prefix of 3+ lower-case letters, digits and '-', starting with a letter" 2
[[ -n "$EVENTS_PREFIX" ]] && REQUIRED_SERVICES+=(pubsub.googleapis.com)

if [[ -n "$QUEUE_NAME" ]]; then
  [[ "$QUEUE_NAME" =~ ^[A-Za-z0-9-]{1,100}$ ]] || die "--queue may hold only letters, digits and '-'" 2
  for pair in "QUEUE_MAX_CONCURRENT --queue-max-concurrent" "QUEUE_MAX_ATTEMPTS --queue-max-attempts" \
              "QUEUE_MIN_BACKOFF --queue-min-backoff" "QUEUE_MAX_BACKOFF --queue-max-backoff"; do
    read -r var flag <<< "$pair"
    is_count "${!var}" && (( ${!var} >= 1 )) || die "$flag must be a whole number of at least 1" 2
  done
  (( QUEUE_MIN_BACKOFF <= QUEUE_MAX_BACKOFF )) || die "--queue-min-backoff cannot be above --queue-max-backoff" 2
  ALL_FUNCTIONS+=(deliver)  # the queue's target: deployed private
  REQUIRED_SERVICES+=(cloudtasks.googleapis.com iam.googleapis.com)
fi

# Which functions: entry points or paths, with or without the name prefix.
SELECTED=()
if [[ -z "$FUNCTIONS_ARG" ]]; then
  SELECTED=("${ALL_FUNCTIONS[@]}")
else
  IFS=',' read -r -a requested <<< "$FUNCTIONS_ARG"
  for raw in "${requested[@]}"; do
    fn="${raw// /}"
    [[ -z "$fn" ]] && continue
    fn="${fn#/}"
    [[ -n "$NAME_PREFIX" ]] && fn="${fn#"$NAME_PREFIX"}"
    fn="${fn//-/_}"
    contains "$fn" "${ALL_FUNCTIONS[@]}" || die "unknown function '$raw'; choose from: ${ALL_FUNCTIONS[*]}" 2
    contains "$fn" ${SELECTED[@]+"${SELECTED[@]}"} || SELECTED+=("$fn")
  done
  (( ${#SELECTED[@]} )) || die "--functions lists no function" 2
fi

ALL_SECRETS=("${CREDENTIAL_SECRETS[@]}" "${CALLER_SECRETS[@]}" "${WEBHOOK_SECRETS[@]}")

# The extra environment: KEY=VALUE lines. Kept in order; secrets are refused.
[[ -z "$ENV_FILE" && -f "$HERE/deploy.env" ]] && ENV_FILE="$HERE/deploy.env"
EXTRA_ENV=()
if [[ -n "$ENV_FILE" ]]; then
  [[ -f "$ENV_FILE" ]] || die "--env-file $ENV_FILE does not exist" 2
  lineno=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$ENV_FILE:$lineno: expected KEY=VALUE" 2
    key="${BASH_REMATCH[1]}"
    val="${BASH_REMATCH[2]}"
    if [[ "$val" =~ ^\"(.*)\"$ || "$val" =~ ^\'(.*)\'$ ]]; then val="${BASH_REMATCH[1]}"; fi
    if contains "$key" "${ALL_SECRETS[@]}"; then
      die "$ENV_FILE:$lineno: $key is a secret: keep it out of environment variables and store it in Secret Manager as $(secret_name "$key") (see --help)" 2
    fi
    case "$key" in
      THREADS) die "$ENV_FILE:$lineno: THREADS follows --concurrency; set that instead" 2 ;;
      GOOGLE_CLOUD_PROJECT) die "$ENV_FILE:$lineno: GOOGLE_CLOUD_PROJECT follows --project; set that instead" 2 ;;
      FIRESTORE_COLLECTION_PREFIX)
        # The TTL policies must name the same collections the code writes.
        if (( COLLECTION_PREFIX_GIVEN )) && [[ "$val" != "$COLLECTION_PREFIX" ]]; then
          die "$ENV_FILE:$lineno: FIRESTORE_COLLECTION_PREFIX differs from --collection-prefix" 2
        fi
        COLLECTION_PREFIX="$val"
        [[ "$COLLECTION_PREFIX" =~ ^[A-Za-z0-9_-]*$ ]] || die "$ENV_FILE:$lineno: bad FIRESTORE_COLLECTION_PREFIX" 2
        continue ;;
    esac
    EXTRA_ENV+=("$key=$val")
  done < "$ENV_FILE"
fi

if [[ -n "$QUEUE_NAME" && -z "$QUEUE_RPS" ]]; then
  QUEUE_RPS=30
  for pair in ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"}; do
    [[ "$pair" == VONAGE_MAX_RPS=* ]] && QUEUE_RPS="${pair#VONAGE_MAX_RPS=}"
  done
fi
if [[ -n "$QUEUE_NAME" ]]; then
  [[ "$QUEUE_RPS" =~ ^[0-9]+([.][0-9]+)?$ ]] && [[ "$QUEUE_RPS" != 0 ]] || die "--queue-rps must be a positive number" 2
fi

# ---- 1. preflight ----------------------------------------------------------------
cd "$HERE"
if (( DRY_RUN )); then
  note "dry run: every command is printed, none is run"
  [[ -n "$PROJECT" ]] || PROJECT="YOUR_PROJECT_ID"
else
  command -v gcloud >/dev/null 2>&1 || die "gcloud (the Google Cloud CLI) is not installed or not on PATH.
  Install it from https://cloud.google.com/sdk/docs/install, then run: gcloud auth login
  (./deploy.sh --dry-run prints every command without it)" 2
  account="$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)"
  [[ -n "$account" ]] || die "gcloud is not logged in. Run: gcloud auth login
  (and, for a project of your own, gcloud config set project PROJECT_ID)" 2
  note "gcloud account: ${account%%$'\n'*}"
  if [[ -z "$PROJECT" ]]; then
    PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
    [[ -n "$PROJECT" ]] || die "no Google Cloud project: pass --project PROJECT_ID or run gcloud config set project PROJECT_ID" 2
  fi
fi
[[ -n "$FIRESTORE_LOCATION" ]] || FIRESTORE_LOCATION="$REGION"
if (( FIRESTORE_ONLY )); then note "project $PROJECT"; else note "project $PROJECT, region $REGION, functions: ${SELECTED[*]}"; fi

WANT_CALLERS=0
WANT_WEBHOOKS=0
for fn in "${SELECTED[@]}"; do
  if is_webhook "$fn"; then WANT_WEBHOOKS=1; else WANT_CALLERS=1; fi
done

# The Firestore database, its TTL policies and composite indexes (idempotent).
setup_firestore() {
  note "Firestore database (created in $FIRESTORE_LOCATION if missing)"
  db_describe=(gcloud firestore databases describe '--database=(default)' "--project=$PROJECT" '--format=value(name)')
  db_create=(gcloud firestore databases create "--location=$FIRESTORE_LOCATION" '--database=(default)' "--project=$PROJECT" --quiet)
  if (( DRY_RUN )); then
    run "${db_describe[@]}"
    note "only if that finds no database:"
    run "${db_create[@]}"
  else
    printf '+ %s\n' "$(quote "${db_describe[@]}")"
    if ! "${db_describe[@]}" >/dev/null 2>&1; then
      run "${db_create[@]}"
    fi
  fi

  note "Firestore TTL policies: documents are deleted once $TTL_FIELD has passed"
  for collection in "${TTL_COLLECTIONS[@]}"; do
    run_soft gcloud firestore fields ttls update "$TTL_FIELD" "--collection-group=$COLLECTION_PREFIX$collection" \
      --enable-ttl --async "--project=$PROJECT" --quiet
  done

  if (( ${#COMPOSITE_INDEXES[@]} )); then
    note "Firestore composite indexes (an existing one makes gcloud fail: that is fine)"
    for spec in "${COMPOSITE_INDEXES[@]}"; do
      read -r collection fields <<< "$spec"
      index_cmd=(gcloud firestore indexes composite create "--collection-group=$COLLECTION_PREFIX$collection")
      IFS=',' read -r -a field_specs <<< "$fields"
      for field_spec in "${field_specs[@]}"; do
        index_cmd+=("--field-config=field-path=${field_spec%%:*},order=${field_spec#*:}")
      done
      run_soft "${index_cmd[@]}" --async "--project=$PROJECT" --quiet
    done
  fi
}

# The APIs first: listing the secrets needs Secret Manager's.
if (( FIRESTORE_ONLY )); then
  # For the runtimes outside Google Cloud (Replit, Lambda, a VM) that keep their state in
  # this project's Firestore: the database and its TTL policies and indexes, nothing else.
  note "--firestore-only: the Firestore database, TTL policies and indexes; no function is deployed"
  run gcloud services enable firestore.googleapis.com "--project=$PROJECT" --quiet
  setup_firestore
  finish
  exit 0
fi
if (( ! SKIP_SETUP )); then
  note "enabling the Google APIs"
  run gcloud services enable "${REQUIRED_SERVICES[@]}" "--project=$PROJECT" --quiet
fi

# ---- secrets that exist ----------------------------------------------------------
PRESENT=()
if (( SECRETS_GIVEN )); then
  IFS=',' read -r -a given <<< "$SECRETS_ARG"
  for key in "${given[@]}"; do
    key="${key// /}"
    [[ -z "$key" ]] && continue
    contains "$key" "${ALL_SECRETS[@]}" || die "--secrets: unknown variable $key; choose from: ${ALL_SECRETS[*]}" 2
    PRESENT+=("$key")
  done
elif (( DRY_RUN )); then
  printf '+ %s\n' "$(quote gcloud secrets list "--project=$PROJECT" '--format=value(name)')"
  note "dry run: assuming every secret exists (pass --secrets to choose)"
  PRESENT=("${ALL_SECRETS[@]}")
else
  capture listed "" gcloud secrets list "--project=$PROJECT" '--format=value(name)' \
    || die "could not list the secrets of $PROJECT (is secretmanager.googleapis.com enabled? run without --skip-setup)"
  existing=()
  while IFS= read -r line; do [[ -n "$line" ]] && existing+=("${line##*/}"); done <<< "$listed"
  for key in "${ALL_SECRETS[@]}"; do
    contains "$(secret_name "$key")" ${existing[@]+"${existing[@]}"} && PRESENT+=("$key")
  done
fi

has_secret() { contains "$1" ${PRESENT[@]+"${PRESENT[@]}"}; }

problems=()
if ! { has_secret VONAGE_API_KEY && has_secret VONAGE_API_SECRET; } \
   && ! { has_secret VONAGE_APPLICATION_ID && has_secret VONAGE_PRIVATE_KEY; }; then
  problems+=("Vonage credentials: create $(secret_name VONAGE_API_KEY) and $(secret_name VONAGE_API_SECRET), or $(secret_name VONAGE_APPLICATION_ID) and $(secret_name VONAGE_PRIVATE_KEY)")
fi
if (( WANT_CALLERS )) && ! has_secret API_TOKENS; then
  problems+=("send and verify-* refuse every caller without bearer tokens: create $(secret_name API_TOKENS)")
fi
for pair in "VONAGE_APPLICATION_ID VONAGE_PRIVATE_KEY" "VONAGE_API_KEY VONAGE_API_SECRET"; do
  read -r a b <<< "$pair"
  if { has_secret "$a" && ! has_secret "$b"; } || { has_secret "$b" && ! has_secret "$a"; }; then
    problems+=("$(secret_name "$a") and $(secret_name "$b") only work together: create both or neither")
  fi
done
if (( ${#problems[@]} )); then
  printf 'deploy.sh: error: missing secrets in project %s:\n' "$PROJECT" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  printf '  Create one with: printf %%s "$VALUE" | gcloud secrets create NAME --project=%s --data-file=-\n' "$PROJECT" >&2
  exit 1
fi
if (( WANT_WEBHOOKS )) && ! has_secret VONAGE_SIGNATURE_SECRET && ! has_secret WEBHOOK_TOKEN; then
  warn "neither $(secret_name VONAGE_SIGNATURE_SECRET) nor $(secret_name WEBHOOK_TOKEN) exists: inbound and status will refuse every webhook (set WEBHOOK_ALLOW_UNSIGNED=true in the env file only to test)"
fi

# secrets_for FN: the --set-secrets value of one function.
secrets_for() {
  local fn="$1" key refs=()
  local keys=("${CREDENTIAL_SECRETS[@]}")
  if is_webhook "$fn"; then keys+=("${WEBHOOK_SECRETS[@]}"); else keys+=("${CALLER_SECRETS[@]}"); fi
  for key in "${keys[@]}"; do
    has_secret "$key" && refs+=("$key=$(secret_name "$key"):latest")
  done
  local IFS=','
  printf '%s' "${refs[*]}"
}

tasks_account() { printf '%stasks@%s.iam.gserviceaccount.com' "$NAME_PREFIX" "$PROJECT"; }
deliver_url() { printf 'https://%s-%s.cloudfunctions.net/%s' "$REGION" "$PROJECT" "$(deployed_name deliver)"; }

# env_for: the --set-env-vars value (the same for every function). gcloud splits the
# list on ',', so when a value holds one another delimiter is chosen, written ^D^
# in front (`gcloud topic escaping`).
env_for() {
  local pairs=("STATE_BACKEND=firestore" "GOOGLE_CLOUD_PROJECT=$PROJECT" "THREADS=$CONCURRENCY")
  [[ -n "$COLLECTION_PREFIX" ]] && pairs+=("FIRESTORE_COLLECTION_PREFIX=$COLLECTION_PREFIX")
  [[ -n "$EVENTS_PREFIX" ]] && pairs+=("PUBSUB_TOPIC_PREFIX=$EVENTS_PREFIX")
  if [[ -n "$QUEUE_NAME" ]]; then
    # send enqueues, deliver checks the tasks' tokens; the deliver URL and audience are the
    # function's cloudfunctions.net URL, known before it is deployed.
    pairs+=("QUEUE_BACKEND=cloudtasks" "CLOUD_TASKS_QUEUE=projects/$PROJECT/locations/$REGION/queues/$QUEUE_NAME"
            "DELIVER_URL=$(deliver_url)" "DELIVER_SERVICE_ACCOUNT=$(tasks_account)"
            "QUEUE_MAX_ATTEMPTS=$QUEUE_MAX_ATTEMPTS" "QUEUE_MIN_BACKOFF_SECONDS=$QUEUE_MIN_BACKOFF"
            "QUEUE_MAX_BACKOFF_SECONDS=$QUEUE_MAX_BACKOFF")
  fi
  pairs+=(${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"})
  # Cloud Functions gen2 run on Cloud Run behind exactly one proxy, Google's front end, which
  # appends the caller's address to X-Forwarded-For: trust that one hop (docs/money-safety.md)
  # unless the env file says otherwise (e.g. a load balancer in front: 2).
  if [[ " ${pairs[*]} " != *" TRUSTED_PROXY_HOPS="* && " ${pairs[*]} " != *" TRUSTED_PROXIES="* ]]; then
    pairs+=("TRUSTED_PROXY_HOPS=1")
  fi
  local joined delim candidate pair
  for pair in "${pairs[@]}"; do
    [[ "$pair" == *$'\n'* ]] && die "environment values cannot hold a newline: ${pair%%=*}" 2
  done
  joined="$(IFS=','; printf '%s' "${pairs[*]}")"
  if [[ "$(IFS=''; printf '%s' "${pairs[*]}")" != *,* ]]; then
    printf '%s' "$joined"
    return 0
  fi
  delim=""
  for candidate in '@' '|' ';' '~' '#' '+'; do
    [[ "${pairs[*]}" == *"$candidate"* ]] || { delim="$candidate"; break; }
  done
  [[ -n "$delim" ]] || die "the environment values use every delimiter gcloud could split on" 2
  joined="$(IFS="$delim"; printf '%s' "${pairs[*]}")"
  printf '^%s^%s' "$delim" "$joined"
}

# ---- 2. setup --------------------------------------------------------------------
if (( SKIP_SETUP )); then
  note "--skip-setup: APIs, Firestore, TTL policies, indexes and IAM left as they are"
else
  setup_firestore

  note "IAM: the functions' service account reads the secrets and uses Firestore"
  runtime_account="$SERVICE_ACCOUNT"
  if [[ -z "$runtime_account" ]]; then
    capture project_number "PROJECT_NUMBER" gcloud projects describe "$PROJECT" '--format=value(projectNumber)' \
      || die "could not read the project number of $PROJECT"
    runtime_account="$project_number-compute@developer.gserviceaccount.com"
  fi
  for key in ${PRESENT[@]+"${PRESENT[@]}"}; do
    run gcloud secrets add-iam-policy-binding "$(secret_name "$key")" "--project=$PROJECT" \
      "--member=serviceAccount:$runtime_account" --role=roles/secretmanager.secretAccessor --condition=None --quiet
  done
  run gcloud projects add-iam-policy-binding "$PROJECT" "--member=serviceAccount:$runtime_account" \
    --role=roles/datastore.user --condition=None --quiet

  if [[ -n "$QUEUE_NAME" ]]; then
    note "Cloud Tasks queue $QUEUE_NAME: at most $QUEUE_RPS sends/s across every instance"
    run_soft gcloud iam service-accounts create "${NAME_PREFIX}tasks" "--project=$PROJECT" \
      "--display-name=Cloud Tasks caller of the deliver function" --quiet
    queue_flags=("--location=$REGION" "--project=$PROJECT" "--max-dispatches-per-second=$QUEUE_RPS"
                 "--max-concurrent-dispatches=$QUEUE_MAX_CONCURRENT" "--max-attempts=$QUEUE_MAX_ATTEMPTS"
                 "--min-backoff=${QUEUE_MIN_BACKOFF}s" "--max-backoff=${QUEUE_MAX_BACKOFF}s")
    run_soft gcloud tasks queues create "$QUEUE_NAME" "${queue_flags[@]}" --quiet  # exists already: fine
    run gcloud tasks queues update "$QUEUE_NAME" "${queue_flags[@]}" --quiet       # the settings, always
    # The functions enqueue tasks that carry the tasks account's token.
    run gcloud projects add-iam-policy-binding "$PROJECT" "--member=serviceAccount:$runtime_account" \
      --role=roles/cloudtasks.enqueuer --condition=None --quiet
    run gcloud iam service-accounts add-iam-policy-binding "$(tasks_account)" "--project=$PROJECT" \
      "--member=serviceAccount:$runtime_account" --role=roles/iam.serviceAccountUser --quiet
  fi
fi

# ---- 3. deploy -------------------------------------------------------------------
timeout_for() {
  case "$1" in
    send) echo 300s ;;            # a bulk send paces itself to VONAGE_MAX_RPS
    deliver) echo 60s ;;          # one recipient per task
    inbound|status) echo 30s ;;   # Vonage waits ~15 s for an answer anyway
    *) echo 60s ;;
  esac
}

ENV_VARS="$(env_for)"
for fn in "${SELECTED[@]}"; do
  name="$(deployed_name "$fn")"
  note "deploying $name (entry point $fn)"
  cmd=(gcloud functions deploy "$name" --gen2 "--project=$PROJECT" "--region=$REGION"
       "--runtime=$RUNTIME" --source=. "--entry-point=$fn" --trigger-http
       "--memory=$MEMORY")
  # Concurrency above 1 needs at least one whole vCPU on Cloud Run functions.
  (( CONCURRENCY > 1 )) && cmd+=(--cpu=1)
  cmd+=("--concurrency=$CONCURRENCY" "--timeout=$(timeout_for "$fn")")
  if is_webhook "$fn"; then
    cmd+=("--min-instances=$WEBHOOK_MIN_INSTANCES")
  else
    cmd+=(--min-instances=0)
  fi
  cmd+=("--max-instances=$MAX_INSTANCES" "--set-env-vars=$ENV_VARS")
  secret_refs="$(secrets_for "$fn")"
  if [[ -n "$secret_refs" ]]; then cmd+=("--set-secrets=$secret_refs"); else cmd+=(--clear-secrets); fi
  if [[ "$fn" == deliver ]]; then
    cmd+=(--no-allow-unauthenticated)  # IAM: only the queue's service account may invoke it
  # balance is called by Cloud Scheduler with a bearer API token, which cannot ride beside a
  # Google ID token in one Authorization header: it stays public and checks the token itself.
  elif is_webhook "$fn" || [[ "$fn" == balance ]] || (( ! PRIVATE )); then
    cmd+=(--allow-unauthenticated)
  else
    cmd+=(--no-allow-unauthenticated)
  fi
  [[ -n "$SERVICE_ACCOUNT" ]] && cmd+=("--service-account=$SERVICE_ACCOUNT")
  cmd+=(--quiet)
  run "${cmd[@]}"
  if [[ "$fn" == deliver ]]; then
    run gcloud functions add-invoker-policy-binding "$name" "--region=$REGION" "--project=$PROJECT" \
      "--member=serviceAccount:$(tasks_account)" --quiet
  fi
done

# ---- 4. URLs and the Vonage webhooks ---------------------------------------------
# The URL of a deployed function (its Cloud Run URL); a placeholder in a dry run.
url_of() {
  local fn="$1" name url
  name="$(deployed_name "$fn")"
  capture url "https://$REGION-$PROJECT.cloudfunctions.net/$name" \
    gcloud functions describe "$name" "--region=$REGION" "--project=$PROJECT" --v2 '--format=value(serviceConfig.uri)' \
    || { warn "$name is not deployed in $REGION"; url=""; }
  printf -v "URL_$fn" '%s' "$url"
}

# ---- 3b. events: topics, dead letters, consumers and their triggers ---------------
if [[ -n "$EVENTS_PREFIX" ]]; then
  note "events: Pub/Sub topics $EVENTS_PREFIX-*"
  for suffix in "${EVENT_TOPICS[@]}" dead-letter; do
    run_soft gcloud pubsub topics create "$EVENTS_PREFIX-$suffix" "--project=$PROJECT" --quiet
  done
  # Dead letters are kept (7 days) for inspection and replay: a topic alone keeps nothing.
  run_soft gcloud pubsub subscriptions create "$EVENTS_PREFIX-dead-letter-hold" "--topic=$EVENTS_PREFIX-dead-letter" \
    "--project=$PROJECT" --message-retention-duration=7d --expiration-period=never --quiet

  events_account="$SERVICE_ACCOUNT"
  capture events_project_number "PROJECT_NUMBER" gcloud projects describe "$PROJECT" '--format=value(projectNumber)' \
    || die "could not read the project number of $PROJECT"
  [[ -n "$events_account" ]] || events_account="$events_project_number-compute@developer.gserviceaccount.com"
  pubsub_agent="service-$events_project_number@gcp-sa-pubsub.iam.gserviceaccount.com"
  if (( ! SKIP_SETUP )); then
    note "IAM: the functions publish events; Pub/Sub forwards dead letters and signs its pushes"
    run gcloud projects add-iam-policy-binding "$PROJECT" "--member=serviceAccount:$events_account" \
      --role=roles/pubsub.publisher --condition=None --quiet
    run gcloud pubsub topics add-iam-policy-binding "$EVENTS_PREFIX-dead-letter" "--project=$PROJECT" \
      "--member=serviceAccount:$pubsub_agent" --role=roles/pubsub.publisher --quiet
    run gcloud iam service-accounts add-iam-policy-binding "$events_account" "--project=$PROJECT" \
      "--member=serviceAccount:$pubsub_agent" --role=roles/iam.serviceAccountTokenCreator --quiet
  fi

  for fn in "${CONSUMERS[@]}"; do
    name="$(deployed_name "$fn")"
    topic="$EVENTS_PREFIX-$(consumer_topic "$fn")"
    subscription="$EVENTS_PREFIX-${fn//_/-}"
    note "deploying the consumer $name (entry point $fn) on $topic"
    cmd=(gcloud functions deploy "$name" --gen2 "--project=$PROJECT" "--region=$REGION"
         "--runtime=$RUNTIME" --source=. "--entry-point=$fn" --trigger-http
         "--memory=$MEMORY")
    (( CONCURRENCY > 1 )) && cmd+=(--cpu=1)
    cmd+=("--concurrency=$CONCURRENCY" --timeout=60s --min-instances=0 "--max-instances=$MAX_INSTANCES"
          "--set-env-vars=$ENV_VARS")
    # The consumer sends the replies: it needs the Vonage credentials, like inbound.
    secret_refs="$(secrets_for inbound)"
    if [[ -n "$secret_refs" ]]; then cmd+=("--set-secrets=$secret_refs"); else cmd+=(--clear-secrets); fi
    cmd+=(--no-allow-unauthenticated)  # only the push subscription's identity may call it
    [[ -n "$SERVICE_ACCOUNT" ]] && cmd+=("--service-account=$SERVICE_ACCOUNT")
    cmd+=(--quiet)
    run "${cmd[@]}"
    url_of "$fn"
    URL_ref="URL_$fn"
    consumer_url="${!URL_ref}"
    [[ -n "$consumer_url" ]] || die "the consumer $name has no URL; its trigger cannot be created"
    run gcloud run services add-iam-policy-binding "$name" "--region=$REGION" "--project=$PROJECT" \
      "--member=serviceAccount:$events_account" --role=roles/run.invoker --quiet
    note "the trigger of $name: push subscription $subscription"
    # Ordering is fixed when a subscription is created; the rest is set again on every run.
    run_soft gcloud pubsub subscriptions create "$subscription" "--topic=$topic" "--project=$PROJECT" \
      "--push-endpoint=$consumer_url" "--push-auth-service-account=$events_account" --enable-message-ordering \
      "--ack-deadline=$EVENT_ACK_DEADLINE" "--min-retry-delay=$EVENT_MIN_RETRY_DELAY" "--max-retry-delay=$EVENT_MAX_RETRY_DELAY" \
      "--dead-letter-topic=$EVENTS_PREFIX-dead-letter" "--max-delivery-attempts=$EVENT_MAX_DELIVERY_ATTEMPTS" --quiet
    run gcloud pubsub subscriptions update "$subscription" "--project=$PROJECT" \
      "--push-endpoint=$consumer_url" "--push-auth-service-account=$events_account" \
      "--ack-deadline=$EVENT_ACK_DEADLINE" "--min-retry-delay=$EVENT_MIN_RETRY_DELAY" "--max-retry-delay=$EVENT_MAX_RETRY_DELAY" \
      "--dead-letter-topic=$EVENTS_PREFIX-dead-letter" "--max-delivery-attempts=$EVENT_MAX_DELIVERY_ATTEMPTS" --quiet
    if (( ! SKIP_SETUP )); then
      run gcloud pubsub subscriptions add-iam-policy-binding "$subscription" "--project=$PROJECT" \
        "--member=serviceAccount:$pubsub_agent" --role=roles/pubsub.subscriber --quiet
    fi
  done
fi


note "function URLs"
for fn in "${ALL_FUNCTIONS[@]}"; do
  URL_ref="URL_$fn"
  printf -v "$URL_ref" '%s' ""
  if contains "$fn" "${SELECTED[@]}" \
     || { is_webhook "$fn" && (( WANT_WEBHOOKS || SET_VONAGE_WEBHOOKS || SET_SMS_WEBHOOKS )); }; then
    url_of "$fn"
  fi
done
for fn in "${ALL_FUNCTIONS[@]}"; do
  URL_ref="URL_$fn"
  [[ -n "${!URL_ref}" ]] && printf '    %-28s %s\n' "$(deployed_name "$fn")" "${!URL_ref}"
done

# The webhook URLs Vonage must call. With a webhook-token secret, Vonage must also
# send the token: it goes in the URL as ?token=... (the value is never printed).
WEBHOOK_QUERY=""
if has_secret WEBHOOK_TOKEN; then WEBHOOK_QUERY="?token=<the value of $(secret_name WEBHOOK_TOKEN)>"; fi
INBOUND_URL="${URL_inbound:-}"
STATUS_URL="${URL_status:-}"

if [[ -n "$INBOUND_URL" || -n "$STATUS_URL" ]]; then
  cat <<EOT

==> Set these webhook URLs in the Vonage dashboard (https://dashboard.nexmo.com):

  Messages API and Verify v2 (Applications > your application > Edit):
    Messages  Inbound URL  POST  ${INBOUND_URL:-<inbound not deployed>}$WEBHOOK_QUERY
    Messages  Status URL   POST  ${STATUS_URL:-<status not deployed>}$WEBHOOK_QUERY
    Verify    Status URL   POST  ${STATUS_URL:-<status not deployed>}$WEBHOOK_QUERY
    The functions check Vonage's signed-webhook JWT with vonage-signature-secret: it must
    hold the signature secret shown in the dashboard (API Settings).

  SMS API (account-wide: API Settings > SMS settings, when "Default SMS setting" is SMS API):
    Inbound SMS webhook          ${INBOUND_URL:-<inbound not deployed>}$WEBHOOK_QUERY
    Delivery receipts webhook    ${STATUS_URL:-<status not deployed>}$WEBHOOK_QUERY
    Webhook format: POST-JSON (GET and POST form work too)

  Or let this script do it: --set-vonage-webhooks (application) / --set-sms-webhooks (account).
EOT
fi

# ---- 4b. Cloud Scheduler: read the balance on a schedule ---------------------------
# The balance function logs an ALERT below BALANCE_ALERT_THRESHOLD (an alert policy on
# severity=ALERT pages someone). The job sends the first of the API tokens; the printed
# command shows a placeholder, never the token.
if [[ -n "$BALANCE_SCHEDULE" ]] && contains balance "${SELECTED[@]}" && [[ -n "${URL_balance:-}" ]]; then
  note "Cloud Scheduler: the balance function on \"$BALANCE_SCHEDULE\""
  run_soft gcloud services enable cloudscheduler.googleapis.com "--project=$PROJECT" --quiet
  job="$(deployed_name balance)-schedule"
  token_placeholder="<the first token in $(secret_name API_TOKENS)>"
  api_token="$token_placeholder"
  if has_secret API_TOKENS; then
    capture api_token "$token_placeholder" gcloud secrets versions access latest "--secret=$(secret_name API_TOKENS)" "--project=$PROJECT" \
      || { warn "could not read $(secret_name API_TOKENS); the scheduler job was not set"; api_token=""; }
    api_token="${api_token%%,*}"
  else
    warn "no $(secret_name API_TOKENS) secret: the balance function will refuse the scheduler's calls"
  fi
  if [[ -n "$api_token" ]]; then
    job_args=("--project=$PROJECT" "--location=$REGION" "--schedule=$BALANCE_SCHEDULE" "--uri=$URL_balance"
              --http-method=GET --attempt-deadline=60s --quiet)
    printf '+ %s\n' "$(quote gcloud scheduler jobs create http "$job" "${job_args[@]}" "--headers=Authorization=Bearer $token_placeholder")"
    if (( ! DRY_RUN )); then
      gcloud scheduler jobs create http "$job" "${job_args[@]}" "--headers=Authorization=Bearer $api_token" >/dev/null 2>&1 \
        || gcloud scheduler jobs update http "$job" "${job_args[@]}" "--update-headers=Authorization=Bearer $api_token" \
        || warn "the scheduler job $job could not be created or updated"
    fi
  fi
  unset api_token
fi

# ---- 5. optionally set the webhooks through Vonage's APIs ------------------------
if (( SET_VONAGE_WEBHOOKS || SET_SMS_WEBHOOKS )); then
  [[ -n "$INBOUND_URL" && -n "$STATUS_URL" ]] || die "the inbound and status functions must be deployed before their URLs can be set"
  PYTHON="python3"
  [[ -x "$HERE/.venv/bin/python" ]] && PYTHON="$HERE/.venv/bin/python"

  # Credentials: from the environment, else from Secret Manager (never printed).
  creds=(VONAGE_API_KEY VONAGE_API_SECRET)
  (( SET_VONAGE_WEBHOOKS )) && creds+=(VONAGE_APPLICATION_ID)
  if has_secret WEBHOOK_TOKEN && [[ -z "${WEBHOOK_TOKEN:-}" ]]; then creds+=(WEBHOOK_TOKEN); fi
  for key in "${creds[@]}"; do
    [[ -n "${!key:-}" ]] && continue
    has_secret "$key" || die "$key is needed to set the webhooks: export it or create the secret $(secret_name "$key")"
    capture secret_value "\$$key" gcloud secrets versions access latest "--secret=$(secret_name "$key")" "--project=$PROJECT" \
      || die "could not read the secret $(secret_name "$key")"
    printf -v "$key" '%s' "$secret_value"
    export "${key?}"
    unset secret_value
  done

  inbound_webhook="$INBOUND_URL"
  status_webhook="$STATUS_URL"
  if [[ -n "${WEBHOOK_TOKEN:-}" ]] && has_secret WEBHOOK_TOKEN; then
    # The token rides in the URL; the helper masks it whenever it prints a URL.
    inbound_webhook="$INBOUND_URL?token=$WEBHOOK_TOKEN"
    status_webhook="$STATUS_URL?token=$WEBHOOK_TOKEN"
  fi
  helper_flags=()
  (( DRY_RUN )) && helper_flags+=(--dry-run)
  if (( SET_VONAGE_WEBHOOKS )); then
    note "setting the application's webhooks through the Vonage Applications API"
    printf '+ %s\n' "$(quote "$PYTHON" scripts/vonage_webhooks.py application "--application-id=$VONAGE_APPLICATION_ID" \
      "--inbound-url=$INBOUND_URL$WEBHOOK_QUERY" "--status-url=$STATUS_URL$WEBHOOK_QUERY" "--verify-status-url=$STATUS_URL$WEBHOOK_QUERY")"
    "$PYTHON" scripts/vonage_webhooks.py application "--application-id=$VONAGE_APPLICATION_ID" \
      "--inbound-url=$inbound_webhook" "--status-url=$status_webhook" "--verify-status-url=$status_webhook" \
      ${helper_flags[@]+"${helper_flags[@]}"} || die "setting the application's webhooks failed (see above)"
  fi
  if (( SET_SMS_WEBHOOKS )); then
    note "setting the account's SMS API webhooks through the Vonage Account API"
    printf '+ %s\n' "$(quote "$PYTHON" scripts/vonage_webhooks.py sms \
      "--inbound-url=$INBOUND_URL$WEBHOOK_QUERY" "--status-url=$STATUS_URL$WEBHOOK_QUERY")"
    "$PYTHON" scripts/vonage_webhooks.py sms "--inbound-url=$inbound_webhook" "--status-url=$status_webhook" \
      ${helper_flags[@]+"${helper_flags[@]}"} || die "setting the SMS API webhooks failed (see above)"
  fi
fi

finish
