"""Google Cloud Tasks as the queue: HTTP tasks to the ``deliver`` function.

``google-cloud-tasks`` is imported on first use only (a deployment without Cloud Tasks never
loads it). Each task is a POST of its JSON payload to ``DELIVER_URL`` carrying an OIDC token of
``DELIVER_SERVICE_ACCOUNT`` (audience ``DELIVER_AUDIENCE``, default the URL), named
``<CLOUD_TASKS_QUEUE>/tasks/<task name>`` so Cloud Tasks refuses a second one
(``AlreadyExists``), and scheduled with ``schedule_time``. The queue's own settings
(deploy.sh) give the rate across every instance and the retries.

With ``CLOUD_TASKS_EMULATOR_HOST`` the client talks to the emulator over an insecure gRPC
channel, and tasks carry ``X-Deliver-Secret`` (``DELIVER_SECRET``) instead of a token, since the
emulator sends none. The emulator neither dedupes names nor deletes tasks; the product does not
rely on either (``shared.messages.batches`` checks the batch and the recipient before sending).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError, ServiceError
from shared.queue.base import RetryPolicy, Task, TaskQueue

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["CloudTasksQueue"]

SECRET_HEADER = "X-Deliver-Secret"


class CloudTasksQueue(TaskQueue):
    """Tasks in a Cloud Tasks queue (``projects/P/locations/L/queues/Q``)."""

    name = "cloudtasks"

    def __init__(
        self,
        queue_path: str,
        url: str,
        *,
        service_account: str | None = None,
        audience: str | None = None,
        secret: str | None = None,
        emulator_host: str | None = None,
        client: Any = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(policy=policy, clock=clock)
        self.queue_path = queue_path
        self.url = url
        self.service_account = service_account
        self.audience = audience or url
        self.secret = secret
        self.emulator_host = emulator_host
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> CloudTasksQueue:
        from shared.queue import retry_policy

        problems = []
        if not settings.cloud_tasks_queue or settings.cloud_tasks_queue.count("/") != 5:
            problems.append("CLOUD_TASKS_QUEUE must be projects/PROJECT/locations/LOCATION/queues/QUEUE")
        if not settings.deliver_url:
            problems.append("DELIVER_URL must be the URL of the deliver function")
        if not settings.cloud_tasks_emulator_host and not settings.deliver_service_account:
            problems.append("DELIVER_SERVICE_ACCOUNT must name the service account whose OIDC token tasks carry")
        if settings.cloud_tasks_emulator_host and not settings.deliver_secret:
            problems.append("DELIVER_SECRET must be set with the emulator (it sends no OIDC token)")
        if problems:
            raise ConfigError(problems)
        return cls(
            str(settings.cloud_tasks_queue),
            str(settings.deliver_url),
            service_account=settings.deliver_service_account,
            audience=settings.deliver_audience,
            secret=settings.deliver_secret if settings.cloud_tasks_emulator_host else None,
            emulator_host=settings.cloud_tasks_emulator_host,
            policy=retry_policy(settings),
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import tasks_v2

            if self.emulator_host:
                import grpc
                from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

                channel = grpc.insecure_channel(self.emulator_host)
                self._client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
            else:
                self._client = tasks_v2.CloudTasksClient()
        return self._client

    def task_path(self, name: str) -> str:
        return f"{self.queue_path}/tasks/{name}"

    def _enqueue(self, task: Task) -> bool:
        from google.api_core import exceptions as gexc
        from google.protobuf import timestamp_pb2

        headers = {"Content-Type": "application/json"}
        http_request: dict[str, Any] = {
            "http_method": "POST",
            "url": self.url,
            "headers": headers,
            "body": json.dumps(dict(task.payload), separators=(",", ":")).encode(),
        }
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        if self.service_account:
            http_request["oidc_token"] = {"service_account_email": self.service_account, "audience": self.audience}
        schedule = timestamp_pb2.Timestamp()
        schedule.FromNanoseconds(int(task.due_at * 1e9))
        body = {"name": self.task_path(task.name), "http_request": http_request, "schedule_time": schedule}
        try:
            self.client.create_task(parent=self.queue_path, task=body)
        except gexc.AlreadyExists:
            return False
        except gexc.GoogleAPICallError as exc:
            raise ServiceError(
                f"Cloud Tasks refused the task: {type(exc).__name__}", code="queue_unavailable", status=503, retry_after=5.0
            ) from exc
        return True

    def _cancel(self, name: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self.client.delete_task(name=self.task_path(name))
        except (gexc.NotFound, gexc.MethodNotImplemented, gexc.FailedPrecondition):
            return False  # already ran, or the emulator (no DeleteTask): deliver checks the batch
        except gexc.GoogleAPICallError:
            return False
        return True
