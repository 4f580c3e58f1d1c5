"""deploy.sh --events: topics, the dead-letter topic, the consumer and its trigger (a push
subscription with ordering, a retry policy and dead-lettering), against the stand-in gcloud
and in --dry-run."""

from __future__ import annotations

from tests.deploy.test_deploy_sh import env_vars
from tests.fixtures.deploy import FAKE_PROJECT_NUMBER, flag_value

TOPICS = ("message-inbound", "message-status", "verify-completed", "optout", "batch-completed", "account-balance-low", "dead-letter")
RUNTIME_ACCOUNT = f"{FAKE_PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
PUBSUB_AGENT = f"service-{FAKE_PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"


def test_events_create_topics_deploy_the_consumer_and_its_push_subscription(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--events", "vf-events")
    assert result.returncode == 0, result.stderr
    created = [call[3] for call in result.gcloud_calls("pubsub", "topics", "create")]
    assert created == [f"vf-events-{suffix}" for suffix in TOPICS]
    [hold] = [c for c in result.gcloud_calls("pubsub", "subscriptions", "create") if c[3] == "vf-events-dead-letter-hold"]
    assert flag_value(hold, "--topic") == "vf-events-dead-letter" and flag_value(hold, "--message-retention-duration") == "7d"

    deploys = result.deploys()
    consumer = deploys["vonage-on-inbound"]
    assert flag_value(consumer, "--entry-point") == "on_inbound" and "--no-allow-unauthenticated" in consumer
    assert "VONAGE_SIGNATURE_SECRET=vonage-signature-secret:latest" in flag_value(consumer, "--set-secrets")
    for name, argv in deploys.items():  # every function publishes to (or reads from) the same topics
        assert env_vars(argv)["PUBSUB_TOPIC_PREFIX"] == "vf-events", name

    [sub] = [c for c in result.gcloud_calls("pubsub", "subscriptions", "create") if c[3] == "vf-events-on-inbound"]
    url = "https://vonage-on-inbound-abc123-uc.a.run.app"
    assert flag_value(sub, "--topic") == "vf-events-message-inbound" and flag_value(sub, "--push-endpoint") == url
    assert "--enable-message-ordering" in sub and flag_value(sub, "--push-auth-service-account") == RUNTIME_ACCOUNT
    assert flag_value(sub, "--dead-letter-topic") == "vf-events-dead-letter" and flag_value(sub, "--max-delivery-attempts") == "10"
    assert flag_value(sub, "--min-retry-delay") == "10s" and flag_value(sub, "--max-retry-delay") == "600s"
    [update] = result.gcloud_calls("pubsub", "subscriptions", "update")
    assert flag_value(update, "--push-endpoint") == url and flag_value(update, "--dead-letter-topic") == "vf-events-dead-letter"

    invokers = result.gcloud_calls("run", "services", "add-iam-policy-binding")
    assert [(c[3], flag_value(c, "--role"), flag_value(c, "--member")) for c in invokers] == [
        ("vonage-on-inbound", "roles/run.invoker", f"serviceAccount:{RUNTIME_ACCOUNT}")
    ]
    [dead_letter_grant] = result.gcloud_calls("pubsub", "topics", "add-iam-policy-binding")
    assert dead_letter_grant[3] == "vf-events-dead-letter" and flag_value(dead_letter_grant, "--member") == f"serviceAccount:{PUBSUB_AGENT}"
    enabled = result.gcloud_calls("services", "enable")[0]
    assert "pubsub.googleapis.com" in enabled
    # The subscription is created after its consumer exists (its URL is the push endpoint).
    order = [" ".join(c[:4]) for c in result.calls]
    assert order.index("functions deploy vonage-on-inbound --gen2") < order.index("pubsub subscriptions create vf-events-on-inbound")


def test_events_dry_run_prints_all_of_it_and_runs_nothing(fake_gcloud):
    result = fake_gcloud.run("--dry-run", "--project", "p1", "--events", "vf-events")
    assert result.returncode == 0, result.stderr
    assert result.calls == []
    printed = [" ".join(argv[:5]) for argv in result.printed]
    for suffix in TOPICS:
        assert f"gcloud pubsub topics create vf-events-{suffix}" in printed
    assert "gcloud functions deploy vonage-on-inbound --gen2" in printed
    assert "gcloud pubsub subscriptions create vf-events-on-inbound" in printed
    assert "gcloud pubsub subscriptions update vf-events-on-inbound" in printed


def test_without_events_nothing_of_it_is_deployed(fake_gcloud):
    result = fake_gcloud.run("--project", "p1")
    assert result.returncode == 0, result.stderr
    assert result.gcloud_calls("pubsub") == [] and "vonage-on-inbound" not in result.deploys()
    assert all("PUBSUB_TOPIC_PREFIX" not in env_vars(argv) for argv in result.deploys().values())


def test_a_bad_events_prefix_is_refused(fake_gcloud):
    result = fake_gcloud.run("--project", "p1", "--events", "Bad_Prefix")
    assert result.returncode == 2 and "--events" in result.stderr and result.calls == []
