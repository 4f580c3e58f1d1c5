"""deploy.sh: the commands it issues for each function, against a stand-in gcloud and in
--dry-run, and how it fails (gcloud missing, not logged in, secrets missing)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fixtures.deploy import DEPLOY_SH, FAKE_PROJECT_NUMBER, flag_value, make_fake_gcloud

ALL = ("send", "verify_start", "verify_check", "verify_cancel", "verify_next", "inbound", "status", "balance")
WEBHOOKS = ("inbound", "status")
CALLERS = ("send", "verify_start", "verify_check", "verify_cancel", "verify_next")
TTL = ("budgets", "events_outbox", "events_processed", "idempotency", "inbound_parts", "message_ids", "queue_tasks",
       "ratelimits", "verifications", "webhook_events")


def deployed(fn: str) -> str:
    return "vonage-" + fn.replace("_", "-")


def env_vars(argv: list[str]) -> dict[str, str]:
    """--set-env-vars parsed the way gcloud does (with its ^D^ alternate delimiter)."""
    value = flag_value(argv, "--set-env-vars")
    assert value is not None, f"no --set-env-vars in {argv}"
    delimiter = ","
    match = re.match(r"^\^(.)\^(.*)$", value, re.DOTALL)
    if match:
        delimiter, value = match.group(1), match.group(2)
    pairs = [item.split("=", 1) for item in value.split(delimiter)]
    return {key: val for key, val in pairs}


def secrets(argv: list[str]) -> dict[str, str]:
    value = flag_value(argv, "--set-secrets")
    if value is None:
        return {}
    return dict(item.split("=", 1) for item in value.split(","))


# ---- help and early failures -------------------------------------------------------


def test_help_explains_every_option_the_script_accepts(fake_gcloud, no_gcloud_path):
    result = fake_gcloud.run("--help", path=no_gcloud_path)
    assert result.returncode == 0, result.stderr
    accepted = set(re.findall(r"^\s+(--[a-z-]+)\)", DEPLOY_SH.read_text(encoding="utf-8"), re.MULTILINE))
    assert len(accepted) >= 20
    for option in accepted:
        assert re.search(rf"^\s+{re.escape(option)}\b", result.stdout, re.MULTILINE), f"--help does not explain {option}"
    for words in ("Secret Manager", "--dry-run", "min instances", "THREADS", "TTL", "Exit status"):
        assert words in result.stdout
    assert result.calls == []


def test_missing_gcloud_fails_early_with_exit_2_and_runs_nothing(fake_gcloud, no_gcloud_path):
    result = fake_gcloud.run("--project", "p1", path=no_gcloud_path)
    assert result.returncode == 2
    assert "gcloud" in result.stderr and "not installed" in result.stderr
    assert "https://cloud.google.com/sdk/docs/install" in result.stderr
    assert result.printed == []


def test_dry_run_needs_neither_gcloud_nor_a_login(fake_gcloud, no_gcloud_path):
    result = fake_gcloud.run("--dry-run", "--project", "p1", path=no_gcloud_path)
    assert result.returncode == 0, result.stderr
    deploys = [argv for argv in result.printed if argv[:3] == ["gcloud", "functions", "deploy"]]
    assert [argv[3] for argv in deploys] == [deployed(fn) for fn in ALL]
    assert "nothing was run" in result.stdout


def test_dry_run_with_the_stand_in_on_path_calls_it_not_once(fake_gcloud):
    result = fake_gcloud.run("--dry-run", "--project", "p1", "--set-vonage-webhooks", "--set-sms-webhooks")
    assert result.returncode == 0, result.stderr
    assert result.calls == []


def test_not_logged_in_fails_early_with_exit_2(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", env={"FAKE_GCLOUD_ACCOUNT": ""})
    assert result.returncode == 2
    assert "not logged in" in result.stderr and "gcloud auth login" in result.stderr
    assert [call[:2] for call in result.calls] == [["auth", "list"]]
    assert "--filter=status:ACTIVE" in result.calls[0]


def test_no_project_anywhere_fails_early_with_exit_2(fake_gcloud):
    result = fake_gcloud.run(env={"FAKE_GCLOUD_PROJECT": ""})
    assert result.returncode == 2
    assert "--project" in result.stderr
    assert result.deploys() == {}


def test_the_project_defaults_to_gcloud_config(fake_gcloud):
    result = fake_gcloud.run("--skip-setup")
    assert result.returncode == 0, result.stderr
    assert {flag_value(argv, "--project") for argv in result.deploys().values()} == {"demo-project"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--functions", "send,nope"], "unknown function 'nope'"),
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "many"], "--concurrency"),
        (["--min-instances", "5", "--max-instances", "2"], "--min-instances"),
        (["--runtime", "nodejs20"], "--runtime"),
        (["--frobnicate"], "unknown option"),
        (["--project"], "--project needs a value"),
    ],
)
def test_bad_usage_exits_2_before_any_command(fake_gcloud, args, message):
    result = fake_gcloud.run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.calls == []


# ---- what each function gets -------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    # One real run (against the stand-in) that many tests read: it changes nothing.
    result = make_fake_gcloud(tmp_path_factory.mktemp("full_run")).run("--project", "p1", "--region", "europe-west1")
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("fn", ALL)
def test_each_function_is_deployed_from_the_one_source_tree_with_its_entry_point(full_run, fn):
    argv = full_run.deploys()[deployed(fn)]
    assert argv[:3] == ["functions", "deploy", deployed(fn)]
    assert "--gen2" in argv and "--trigger-http" in argv and "--quiet" in argv
    assert flag_value(argv, "--entry-point") == fn
    assert flag_value(argv, "--source") == "."
    assert flag_value(argv, "--runtime") == "python312"
    assert flag_value(argv, "--region") == "europe-west1"
    assert flag_value(argv, "--project") == "p1"
    assert flag_value(argv, "--memory") == "512Mi"
    assert flag_value(argv, "--max-instances") == "10"


@pytest.mark.parametrize("fn", ALL)
def test_concurrency_comes_with_matching_threads_and_a_whole_cpu(full_run, fn):
    argv = full_run.deploys()[deployed(fn)]
    assert flag_value(argv, "--concurrency") == "8"
    assert env_vars(argv)["THREADS"] == "8"
    assert flag_value(argv, "--cpu") == "1"


@pytest.mark.parametrize("fn", ALL)
def test_every_function_uses_firestore_in_its_project(full_run, fn):
    env = env_vars(full_run.deploys()[deployed(fn)])
    assert env["STATE_BACKEND"] == "firestore"
    assert env["GOOGLE_CLOUD_PROJECT"] == "p1"
    assert "FIRESTORE_COLLECTION_PREFIX" not in env


@pytest.mark.parametrize("fn", ALL)
def test_every_function_trusts_the_one_hop_of_googles_front_end(full_run, fn):
    # The app ignores X-Forwarded-For unless told how many proxies append to it (issue 15).
    assert env_vars(full_run.deploys()[deployed(fn)])["TRUSTED_PROXY_HOPS"] == "1"


@pytest.mark.parametrize("fn", WEBHOOKS)
def test_webhook_functions_are_public_and_kept_warm(full_run, fn):
    argv = full_run.deploys()[deployed(fn)]
    assert "--allow-unauthenticated" in argv and "--no-allow-unauthenticated" not in argv
    assert int(flag_value(argv, "--min-instances")) >= 1
    assert flag_value(argv, "--timeout") == "30s"


@pytest.mark.parametrize("fn", CALLERS)
def test_caller_functions_scale_to_zero_and_are_public_at_the_google_layer_by_default(full_run, fn):
    argv = full_run.deploys()[deployed(fn)]
    assert "--allow-unauthenticated" in argv
    assert flag_value(argv, "--min-instances") == "0"


def test_private_puts_the_caller_functions_behind_google_iam_but_not_the_webhooks(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--private", "--skip-setup")
    assert result.returncode == 0, result.stderr
    deploys = result.deploys()
    for fn in CALLERS:
        assert "--no-allow-unauthenticated" in deploys[deployed(fn)]
        assert "--allow-unauthenticated" not in deploys[deployed(fn)]
    for fn in WEBHOOKS:
        assert "--allow-unauthenticated" in deploys[deployed(fn)]


@pytest.mark.parametrize("fn", ALL)
def test_secrets_come_from_secret_manager_one_per_credential(full_run, fn):
    mounted = secrets(full_run.deploys()[deployed(fn)])
    for key in ("VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_SIGNATURE_SECRET"):
        assert mounted[key] == key.lower().replace("_", "-") + ":latest"
    if fn in WEBHOOKS:
        assert mounted["WEBHOOK_TOKEN"] == "webhook-token:latest"
        assert "API_TOKENS" not in mounted  # Vonage never presents our callers' tokens
    else:
        assert mounted["API_TOKENS"] == "api-tokens:latest"
        assert "WEBHOOK_TOKEN" not in mounted
    # No secret value ever travels as a plain environment variable.
    assert not set(env_vars(full_run.deploys()[deployed(fn)])) & set(mounted)


def test_only_the_secrets_that_exist_are_mounted(fake_gcloud):
    existing = "vonage-api-key,vonage-api-secret,api-tokens,vonage-signature-secret"
    result = fake_gcloud.run("--project", "p1", env={"FAKE_GCLOUD_SECRETS": existing})
    assert result.returncode == 0, result.stderr
    for fn in ALL:
        mounted = secrets(result.deploys()[deployed(fn)])
        assert "VONAGE_PRIVATE_KEY" not in mounted and "VONAGE_APPLICATION_ID" not in mounted
        assert "WEBHOOK_TOKEN" not in mounted
    # The service account may read exactly the secrets that exist.
    granted = [call[2] for call in result.gcloud_calls("secrets", "add-iam-policy-binding")]
    assert sorted(granted) == sorted(existing.split(","))


def test_missing_required_secrets_stop_the_deployment_with_what_to_create(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", env={"FAKE_GCLOUD_SECRETS": "vonage-api-key"})
    assert result.returncode == 1
    assert "vonage-api-secret" in result.stderr
    assert "api-tokens" in result.stderr
    assert "gcloud secrets create" in result.stderr
    assert result.deploys() == {}


def test_webhooks_alone_need_no_api_tokens(fake_gcloud):
    result = fake_gcloud.run(
        "--project", "p1", "--functions", "inbound,status",
        env={"FAKE_GCLOUD_SECRETS": "vonage-application-id,vonage-private-key,vonage-signature-secret"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.deploys()) == ["vonage-inbound", "vonage-status"]


def test_a_webhook_deployment_with_no_way_to_authenticate_vonage_warns(fake_gcloud):
    result = fake_gcloud.run(
        "--project", "p1", "--functions", "inbound",
        env={"FAKE_GCLOUD_SECRETS": "vonage-api-key,vonage-api-secret"},
    )
    assert result.returncode == 0
    assert "refuse every webhook" in result.stderr


def test_secret_prefix_renames_every_secret(fake_gcloud):
    names = ",".join("staging-" + n for n in ("vonage-api-key", "vonage-api-secret", "api-tokens"))
    result = fake_gcloud.run("--project", "p1", "--secret-prefix", "staging-", "--skip-setup", env={"FAKE_GCLOUD_SECRETS": names})
    assert result.returncode == 0, result.stderr
    assert secrets(result.deploys()["vonage-send"]) == {
        "VONAGE_API_KEY": "staging-vonage-api-key:latest",
        "VONAGE_API_SECRET": "staging-vonage-api-secret:latest",
        "API_TOKENS": "staging-api-tokens:latest",
    }


def test_functions_option_deploys_only_those_named_either_way(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--functions", "verify-start, inbound,vonage-status,verify_start", "--skip-setup")
    assert result.returncode == 0, result.stderr
    assert sorted(result.deploys()) == ["vonage-inbound", "vonage-status", "vonage-verify-start"]


def test_concurrency_one_needs_no_whole_cpu(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--concurrency", "1", "--functions", "send", "--skip-setup")
    argv = result.deploys()["vonage-send"]
    assert flag_value(argv, "--concurrency") == "1"
    assert env_vars(argv)["THREADS"] == "1"
    assert flag_value(argv, "--cpu") is None


def test_concurrency_option_sets_threads_to_match(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--concurrency=24", "--min-instances=2", "--max-instances=30", "--skip-setup")
    for fn in ALL:
        argv = result.deploys()[deployed(fn)]
        assert flag_value(argv, "--concurrency") == "24"
        assert env_vars(argv)["THREADS"] == "24"
        assert flag_value(argv, "--max-instances") == "30"
    assert flag_value(result.deploys()["vonage-inbound"], "--min-instances") == "2"
    assert flag_value(result.deploys()["vonage-send"], "--min-instances") == "0"


def test_service_account_runs_the_functions_and_gets_the_grants(fake_gcloud):
    sa = "vonage-fns@p1.iam.gserviceaccount.com"
    result = fake_gcloud.run("--project", "p1", "--service-account", sa)
    assert result.returncode == 0, result.stderr
    for argv in result.deploys().values():
        assert flag_value(argv, "--service-account") == sa
    grants = result.gcloud_calls("secrets", "add-iam-policy-binding") + result.gcloud_calls("projects", "add-iam-policy-binding")
    assert grants and {flag_value(g, "--member") for g in grants} == {f"serviceAccount:{sa}"}
    assert result.gcloud_calls("projects", "describe") == []


def test_without_a_service_account_the_default_compute_account_gets_the_grants(full_run):
    members = {flag_value(g, "--member") for g in full_run.gcloud_calls("projects", "add-iam-policy-binding")}
    assert members == {f"serviceAccount:{FAKE_PROJECT_NUMBER}-compute@developer.gserviceaccount.com"}
    roles = {flag_value(g, "--role") for g in full_run.gcloud_calls("projects", "add-iam-policy-binding")}
    assert roles == {"roles/datastore.user"}


# ---- Firestore set-up --------------------------------------------------------------


def test_a_ttl_policy_is_created_for_every_collection_that_expires(full_run):
    updates = full_run.gcloud_calls("firestore", "fields", "ttls", "update")
    assert sorted(flag_value(u, "--collection-group") for u in updates) == sorted(TTL)
    for update in updates:
        assert update[4] == "expire_at"
        assert "--enable-ttl" in update
        assert flag_value(update, "--project") == "p1"


def test_collection_prefix_reaches_the_ttl_policies_indexes_and_the_functions(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--collection-prefix", "dev_")
    assert result.returncode == 0, result.stderr
    groups = {flag_value(u, "--collection-group") for u in result.gcloud_calls("firestore", "fields", "ttls", "update")}
    assert groups == {"dev_" + c for c in TTL}
    index_groups = {flag_value(i, "--collection-group") for i in result.gcloud_calls("firestore", "indexes", "composite", "create")}
    assert index_groups == {"dev_inbound", "dev_queue_tasks", "dev_batch_recipients"}
    for argv in result.deploys().values():
        assert env_vars(argv)["FIRESTORE_COLLECTION_PREFIX"] == "dev_"


def test_the_inbound_listing_indexes_are_created(full_run):
    created = full_run.gcloud_calls("firestore", "indexes", "composite", "create")
    configs = sorted(tuple(a for a in call if a.startswith("--field-config=")) for call in created)
    assert configs == [
        ("--field-config=field-path=from,order=ascending", "--field-config=field-path=received_at,order=descending"),
        ("--field-config=field-path=page,order=ascending", "--field-config=field-path=index,order=ascending"),
        ("--field-config=field-path=state,order=ascending", "--field-config=field-path=due_at,order=ascending"),
        ("--field-config=field-path=state,order=ascending", "--field-config=field-path=lease_until,order=ascending"),
        ("--field-config=field-path=to,order=ascending", "--field-config=field-path=received_at,order=descending"),
    ]


def test_a_failing_ttl_or_index_command_is_a_warning_not_the_end(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", env={"FAKE_GCLOUD_FAIL": "ttls update|indexes composite create"})
    assert result.returncode == 0, result.stderr
    assert len(result.deploys()) == len(ALL)
    assert "warning" in result.stderr and "finished with" in result.stdout


def test_the_database_is_created_only_when_missing(fake_gcloud):
    present = fake_gcloud.run("--project", "p1", "--functions", "send")
    assert present.gcloud_calls("firestore", "databases", "create") == []
    missing = fake_gcloud.run("--project", "p1", "--functions", "send", "--firestore-location", "eur3", env={"FAKE_GCLOUD_NO_DATABASE": "1"})
    creates = missing.gcloud_calls("firestore", "databases", "create")
    assert len(creates) == 1 and flag_value(creates[0], "--location") == "eur3"


def test_skip_setup_touches_neither_apis_nor_firestore_nor_iam(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--skip-setup")
    assert result.returncode == 0, result.stderr
    groups = {tuple(call[:2]) for call in result.calls}
    assert groups == {("auth", "list"), ("secrets", "list"), ("functions", "deploy"), ("functions", "describe")}


def test_a_failed_deploy_stops_the_script_with_an_error(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--skip-setup", env={"FAKE_GCLOUD_FAIL": "functions deploy vonage-verify-check"})
    assert result.returncode != 0
    assert list(result.deploys()) == ["vonage-send", "vonage-verify-start", "vonage-verify-check"]


# ---- the environment file ----------------------------------------------------------


def test_env_file_values_reach_every_function_even_with_commas(fake_gcloud, tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "# settings\nVONAGE_BRAND_NUMBER=447700900000\nexport VERIFY_ALLOWED_COUNTRIES=\"GB,IE\"\n\nDEFAULT_REGION='GB'\n",
        encoding="utf-8",
    )
    result = fake_gcloud.run("--project", "p1", "--skip-setup", "--env-file", str(env_file))
    assert result.returncode == 0, result.stderr
    for argv in result.deploys().values():
        env = env_vars(argv)
        assert env["VERIFY_ALLOWED_COUNTRIES"] == "GB,IE"
        assert env["VONAGE_BRAND_NUMBER"] == "447700900000"
        assert env["DEFAULT_REGION"] == "GB"
        assert env["THREADS"] == "8"
        assert flag_value(argv, "--set-env-vars").startswith("^")


@pytest.mark.parametrize(
    "line, message",
    [
        ("VONAGE_API_SECRET=abc", "is a secret"),
        ("API_TOKENS=t1,t2", "is a secret"),
        ("THREADS=4", "--concurrency"),
        ("not a pair", "expected KEY=VALUE"),
    ],
)
def test_env_file_refuses_secrets_and_what_options_own(fake_gcloud, tmp_path, line, message):
    env_file = tmp_path / "bad.env"
    env_file.write_text(line + "\n", encoding="utf-8")
    result = fake_gcloud.run("--project", "p1", "--env-file", str(env_file))
    assert result.returncode == 2
    assert message in result.stderr
    assert "abc" not in result.stderr.replace("bad.env", "")
    assert result.calls == []


def test_env_file_collection_prefix_also_renames_the_ttl_policies(fake_gcloud, tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("FIRESTORE_COLLECTION_PREFIX=qa_\n", encoding="utf-8")
    result = fake_gcloud.run("--project", "p1", "--env-file", str(env_file))
    groups = {flag_value(u, "--collection-group") for u in result.gcloud_calls("firestore", "fields", "ttls", "update")}
    assert groups == {"qa_" + c for c in TTL}


# ---- dry run = the real commands -----------------------------------------------------


def test_every_command_a_run_issues_is_printed_first(full_run):
    preflight = [["auth", "list"], ["config", "get-value"]]
    issued = [call for call in full_run.calls if call[:2] not in preflight]
    printed = [argv[1:] for argv in full_run.printed if argv[0] == "gcloud"]
    assert printed == issued


def test_dry_run_prints_exactly_the_commands_a_real_run_issues(fake_gcloud):
    args = ("--project", "p1", "--region", "asia-northeast1", "--private", "--collection-prefix", "x_")
    real = fake_gcloud.run(*args, env={"FAKE_GCLOUD_NO_DATABASE": "1"})
    dry = fake_gcloud.run(*args, "--dry-run")
    assert real.returncode == 0 and dry.returncode == 0, real.stderr + dry.stderr
    dry_commands = [
        [arg.replace("PROJECT_NUMBER", FAKE_PROJECT_NUMBER) for arg in argv[1:]] for argv in dry.printed if argv[0] == "gcloud"
    ]
    real_commands = [call for call in real.calls if call[:2] not in (["auth", "list"], ["config", "get-value"])]
    assert dry_commands == real_commands
    assert dry.calls == []


def test_balance_schedule_creates_a_scheduler_job_with_the_first_token_never_printed(fake_gcloud):
    args = ("--project", "p1", "--functions", "balance", "--skip-setup", "--private", "--balance-schedule", "0 * * * *")
    dry = fake_gcloud.run(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    printed = [argv for argv in dry.printed if argv[:4] == ["gcloud", "scheduler", "jobs", "create"]]
    assert len(printed) == 1
    assert flag_value(printed[0], "--schedule") == "0 * * * *"
    assert flag_value(printed[0], "--headers") == "Authorization=Bearer <the first token in api-tokens>"
    real = fake_gcloud.run(*args, env={"FAKE_SECRET_API_TOKENS": "tok-first-123,tok-second-456"})
    assert real.returncode == 0, real.stderr
    [job] = real.gcloud_calls("scheduler", "jobs", "create")
    assert flag_value(job, "--headers") == "Authorization=Bearer tok-first-123"
    assert flag_value(job, "--uri") == "https://vonage-balance-abc123-uc.a.run.app"
    assert "tok-first-123" not in real.stdout + real.stderr
    # balance takes a bearer API token, so it stays reachable even with --private
    assert "--allow-unauthenticated" in real.deploys()["vonage-balance"]


def test_printed_commands_can_be_pasted_into_a_shell(fake_gcloud, tmp_path):
    env_file = tmp_path / "q.env"
    env_file.write_text("OPTOUT_REPLY=You're out; reply START (free)\n", encoding="utf-8")
    dry = fake_gcloud.run("--dry-run", "--project", "p1", "--functions", "send", "--env-file", str(env_file))
    line = next(l for l in dry.stdout.splitlines() if l.startswith("+ gcloud functions deploy"))
    assert env_vars(shlex.split(line[2:]))["OPTOUT_REPLY"] == "You're out; reply START (free)"


# ---- URLs and Vonage's webhooks ------------------------------------------------------


def test_the_webhook_urls_to_set_in_the_dashboard_are_printed(full_run):
    out = full_run.stdout
    inbound = "https://vonage-inbound-abc123-uc.a.run.app"
    status = "https://vonage-status-abc123-uc.a.run.app"
    assert re.search(rf"Inbound URL\s+POST\s+{re.escape(inbound)}\?token=<the value of webhook-token>", out)
    assert re.search(rf"Status URL\s+POST\s+{re.escape(status)}\?token=", out)
    assert f"Delivery receipts webhook    {status}" in out
    assert "Inbound SMS webhook" in out
    for fn in ALL:
        assert f"https://{deployed(fn)}-abc123-uc.a.run.app" in out


def test_without_a_webhook_token_the_urls_carry_no_token(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--secrets", "VONAGE_API_KEY,VONAGE_API_SECRET,VONAGE_SIGNATURE_SECRET,API_TOKENS")
    assert result.returncode == 0, result.stderr
    assert "?token=" not in result.stdout
    assert result.gcloud_calls("secrets", "list") == []


class _FakeVonage:
    """Vonage's Applications and Account APIs on 127.0.0.1, recording what they receive."""

    def __init__(self, *, fail_put: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.application = {
            "id": "app-1",
            "name": "My app",
            "capabilities": {
                "voice": {"webhooks": {"answer_url": {"address": "https://example.com/answer", "http_method": "GET"}}},
                "messages": {"version": "v1", "webhooks": {"inbound_url": {"address": "https://old/in", "http_method": "POST"}}},
                "verify": {"version": "v2", "webhooks": {}},
            },
            "keys": {"public_key": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"},
            "privacy": {"improve_ai": False},
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append(
                    {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body,
                     "content_type": self.headers.get("Content-Type")}
                )
                return body

            def do_GET(self) -> None:
                self._record()
                self._answer(200, fake.application)

            def do_PUT(self) -> None:
                body = self._record()
                if fail_put:
                    self._answer(400, {"title": "Bad Request", "detail": "capabilities invalid"})
                    return
                self._answer(200, {"id": "app-1", **json.loads(body)})

            def do_POST(self) -> None:
                from urllib.parse import parse_qs

                form = {k: v[0] for k, v in parse_qs(self._record().decode()).items()}
                self._answer(200, {"mo-callback-url": form.get("moCallbackUrl"), "dr-callback-url": form.get("drCallbackUrl")})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _FakeVonage:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


SECRET_ENV = {
    "FAKE_SECRET_VONAGE_API_KEY": "key123",
    "FAKE_SECRET_VONAGE_API_SECRET": "s3cr3t-value",
    "FAKE_SECRET_VONAGE_APPLICATION_ID": "app-1",
    "FAKE_SECRET_WEBHOOK_TOKEN": "tok-XYZ-987",
}


def test_set_vonage_webhooks_updates_the_application_and_keeps_everything_else(fake_gcloud):
    with _FakeVonage() as vonage:
        result = fake_gcloud.run(
            "--project", "p1", "--skip-setup", "--set-vonage-webhooks", "--set-sms-webhooks",
            env={**SECRET_ENV, "VONAGE_API_BASE_URL": vonage.url, "VONAGE_REST_BASE_URL": vonage.url},
        )
    assert result.returncode == 0, result.stderr
    methods = [(r["method"], r["path"]) for r in vonage.requests]
    assert methods == [("GET", "/v2/applications/app-1"), ("PUT", "/v2/applications/app-1"), ("POST", "/account/settings")]
    expected_auth = "Basic " + base64.b64encode(b"key123:s3cr3t-value").decode()
    assert all(r["auth"] == expected_auth for r in vonage.requests)

    put = json.loads(vonage.requests[1]["body"])
    hooks = put["capabilities"]["messages"]["webhooks"]
    assert hooks["inbound_url"] == {"address": "https://vonage-inbound-abc123-uc.a.run.app?token=tok-XYZ-987", "http_method": "POST"}
    assert hooks["status_url"] == {"address": "https://vonage-status-abc123-uc.a.run.app?token=tok-XYZ-987", "http_method": "POST"}
    assert put["capabilities"]["verify"] == {
        "webhooks": {"status_url": {"address": "https://vonage-status-abc123-uc.a.run.app?token=tok-XYZ-987", "http_method": "POST"}}
    }
    # PUT replaces the application: what we did not touch goes back as it was read.
    assert put["name"] == "My app"
    assert put["capabilities"]["voice"] == vonage.application["capabilities"]["voice"]
    assert put["keys"] == vonage.application["keys"]
    assert put["privacy"] == {"improve_ai": False}

    from urllib.parse import parse_qs

    form = parse_qs(vonage.requests[2]["body"].decode())
    assert form == {
        "moCallbackUrl": ["https://vonage-inbound-abc123-uc.a.run.app?token=tok-XYZ-987"],
        "drCallbackUrl": ["https://vonage-status-abc123-uc.a.run.app?token=tok-XYZ-987"],
    }
    # The credentials were read from Secret Manager, and no secret reached the output.
    accessed = sorted(flag_value(c, "--secret") for c in result.gcloud_calls("secrets", "versions", "access"))
    assert accessed == ["vonage-api-key", "vonage-api-secret", "vonage-application-id", "webhook-token"]
    for value in ("s3cr3t-value", "tok-XYZ-987"):
        assert value not in result.stdout and value not in result.stderr


def test_credentials_in_the_environment_are_used_instead_of_secret_manager(fake_gcloud):
    with _FakeVonage() as vonage:
        result = fake_gcloud.run(
            "--project", "p1", "--skip-setup", "--set-sms-webhooks", "--secrets", "VONAGE_API_KEY,VONAGE_API_SECRET,API_TOKENS",
            env={"VONAGE_API_KEY": "envkey", "VONAGE_API_SECRET": "envsecret", "VONAGE_REST_BASE_URL": vonage.url},
        )
    assert result.returncode == 0, result.stderr
    assert result.gcloud_calls("secrets", "versions", "access") == []
    assert vonage.requests[0]["auth"] == "Basic " + base64.b64encode(b"envkey:envsecret").decode()


def test_vonage_refusing_the_update_fails_the_run_with_its_reason(fake_gcloud):
    with _FakeVonage(fail_put=True) as vonage:
        result = fake_gcloud.run(
            "--project", "p1", "--skip-setup", "--set-vonage-webhooks",
            env={**SECRET_ENV, "VONAGE_API_BASE_URL": vonage.url},
        )
    assert result.returncode == 1
    assert "400" in result.stderr and "capabilities invalid" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout


def test_dry_run_prints_the_vonage_requests_with_the_secret_masked(fake_gcloud, no_gcloud_path):
    result = fake_gcloud.run(
        "--dry-run", "--project", "p1", "--set-vonage-webhooks", "--set-sms-webhooks",
        env={"VONAGE_API_KEY": "key123", "VONAGE_API_SECRET": "s3cr3t-value", "VONAGE_APPLICATION_ID": "app-9",
             "WEBHOOK_TOKEN": "tok-XYZ-987", "VONAGE_API_BASE_URL": "http://127.0.0.1:9"},
        path=no_gcloud_path,
    )
    assert result.returncode == 0, result.stderr
    curls = [argv for argv in result.printed if argv[0] == "curl"]
    assert [(c[3], c[-1]) for c in curls] == [
        ("GET", "http://127.0.0.1:9/v2/applications/app-9"),
        ("PUT", "http://127.0.0.1:9/v2/applications/app-9"),
        ("POST", "https://rest.nexmo.com/account/settings"),
    ]
    assert all("key123:****" in c for c in curls)
    assert "s3cr3t-value" not in result.stdout + result.stderr
    assert "tok-XYZ-987" not in result.stdout + result.stderr
    assert "token=****" in result.stdout
    # the PUT body is printed whole (masking the token used to swallow the rest of it)
    put = curls[1]
    body = json.loads(put[put.index("--data") + 1])
    hooks = body["capabilities"]["messages"]["webhooks"]
    assert hooks["inbound_url"]["address"].endswith("-inbound?token=****")
    assert hooks["status_url"] == {"address": hooks["status_url"]["address"], "http_method": "POST"}
    assert body["capabilities"]["verify"]["webhooks"]["status_url"]["address"].endswith("?token=****")


# ---- Firestore for the runtimes outside Google Cloud ---------------------------------


def test_firestore_only_sets_up_the_database_and_deploys_nothing(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--firestore-only", "--collection-prefix", "r_",
                             env={"FAKE_GCLOUD_NO_DATABASE": "1", "FAKE_GCLOUD_SECRETS": ""})
    assert result.returncode == 0, result.stderr
    assert {tuple(c[:2]) for c in result.calls} == {("auth", "list"), ("services", "enable"), ("firestore", "databases"),
                                                    ("firestore", "fields"), ("firestore", "indexes")}
    assert result.gcloud_calls("services", "enable")[0][2:3] == ["firestore.googleapis.com"]
    groups = {flag_value(u, "--collection-group") for u in result.gcloud_calls("firestore", "fields", "ttls", "update")}
    assert groups == {"r_" + c for c in TTL}
    assert len(result.gcloud_calls("firestore", "databases", "create")) == 1


def test_firestore_only_excludes_skip_setup(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--firestore-only", "--skip-setup")
    assert result.returncode == 2 and result.calls == []


# ---- the Cloud Tasks queue (--queue, docs/queue.md) ----------------------------------------


@pytest.fixture(scope="module")
def queue_run(tmp_path_factory):
    env_file = tmp_path_factory.mktemp("queue_env") / "deploy.env"
    env_file.write_text("VONAGE_MAX_RPS=25\n")
    result = make_fake_gcloud(tmp_path_factory.mktemp("queue_run")).run(
        "--project", "p1", "--region", "europe-west1", "--queue", "sends", "--queue-max-concurrent", "12",
        "--queue-max-attempts", "7", "--queue-min-backoff", "2", "--queue-max-backoff", "120", "--env-file", str(env_file),
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_queue_gets_the_accounts_rate_and_the_retry_settings(queue_run):
    updates = queue_run.gcloud_calls("tasks", "queues", "update")
    assert len(updates) == 1 and updates[0][3] == "sends"
    update = updates[0]
    assert flag_value(update, "--location") == "europe-west1"
    assert flag_value(update, "--max-dispatches-per-second") == "25"  # VONAGE_MAX_RPS: the rate for every instance
    assert flag_value(update, "--max-concurrent-dispatches") == "12"
    assert flag_value(update, "--max-attempts") == "7"
    assert (flag_value(update, "--min-backoff"), flag_value(update, "--max-backoff")) == ("2s", "120s")
    assert queue_run.gcloud_calls("tasks", "queues", "create")[0][3] == "sends"
    assert any("cloudtasks.googleapis.com" in call for call in queue_run.gcloud_calls("services", "enable"))


def test_deliver_is_deployed_private_and_only_the_tasks_account_may_invoke_it(queue_run):
    deploy = queue_run.deploys()["vonage-deliver"]
    assert flag_value(deploy, "--entry-point") == "deliver"
    assert "--no-allow-unauthenticated" in deploy and "--allow-unauthenticated" not in deploy
    assert queue_run.gcloud_calls("iam", "service-accounts", "create")[0][3] == "vonage-tasks"
    invokers = queue_run.gcloud_calls("functions", "add-invoker-policy-binding")
    assert [(call[2], flag_value(call, "--member")) for call in invokers] == [
        ("vonage-deliver", "serviceAccount:vonage-tasks@p1.iam.gserviceaccount.com")
    ]
    acting = queue_run.gcloud_calls("iam", "service-accounts", "add-iam-policy-binding")
    assert acting[0][3] == "vonage-tasks@p1.iam.gserviceaccount.com"
    assert flag_value(acting[0], "--role") == "roles/iam.serviceAccountUser"
    roles = [flag_value(c, "--role") for c in queue_run.gcloud_calls("projects", "add-iam-policy-binding")]
    assert "roles/cloudtasks.enqueuer" in roles


def test_send_and_deliver_are_told_about_the_queue(queue_run):
    for name in ("vonage-send", "vonage-deliver"):
        env = env_vars(queue_run.deploys()[name])
        assert env["QUEUE_BACKEND"] == "cloudtasks"
        assert env["CLOUD_TASKS_QUEUE"] == "projects/p1/locations/europe-west1/queues/sends"
        assert env["DELIVER_URL"] == "https://europe-west1-p1.cloudfunctions.net/vonage-deliver"
        assert env["DELIVER_SERVICE_ACCOUNT"] == "vonage-tasks@p1.iam.gserviceaccount.com"
        assert env["QUEUE_MAX_ATTEMPTS"] == "7"


def test_without_queue_nothing_about_cloud_tasks_is_created(full_run):
    assert full_run.gcloud_calls("tasks") == []
    assert "vonage-deliver" not in full_run.deploys()
    assert all("QUEUE_BACKEND" not in env_vars(call) for call in full_run.deploys().values())


def test_dry_run_prints_the_queue_commands_a_real_run_issues(fake_gcloud):
    args = ("--project", "p1", "--queue", "sends")
    real = fake_gcloud.run(*args)
    dry = fake_gcloud.run(*args, "--dry-run")
    assert real.returncode == 0 and dry.returncode == 0, real.stderr + dry.stderr
    printed = [[a.replace("PROJECT_NUMBER", FAKE_PROJECT_NUMBER) for a in argv[1:]] for argv in dry.printed if argv[0] == "gcloud"]
    assert [c for c in printed if c[:1] == ["tasks"]] == [c for c in real.calls if c[:1] == ["tasks"]] != []
    assert dry.calls == []


@pytest.mark.parametrize(("args", "message"), [
    (("--queue", "bad name"), "--queue"),
    (("--queue", "q", "--queue-max-attempts", "0"), "--queue-max-attempts"),
    (("--queue", "q", "--queue-min-backoff", "9", "--queue-max-backoff", "3"), "--queue-min-backoff"),
    (("--queue", "q", "--queue-rps", "fast"), "--queue-rps"),
])
def test_bad_queue_options_exit_2_before_any_command(fake_gcloud, args, message):
    result = fake_gcloud.run("--project", "p1", *args)
    assert result.returncode == 2 and message in result.stderr
    assert result.gcloud_calls("functions") == []
