"""A local Vonage sandbox: the SMS, Messages, Verify v2 and legacy Verify APIs, offline.

It speaks Vonage's documented wire formats, checks credentials the way
Vonage does, keeps a balance, throttles, honours trial-account allow-lists, delivers
signed receipts, inbound messages and Verify callbacks to webhooks, puts Verify codes in
an inbox a person or a test can read, and injects faults on demand. Dev and test tooling:
never deployed.

    from sandbox import Sandbox, SandboxConfig
    with Sandbox(SandboxConfig(status_webhook_url="http://127.0.0.1:8080/status")) as sandbox:
        print(sandbox.url)

Command line: ``python -m sandbox serve --port 8025`` and ``python -m sandbox inbox 447700900001``.
"""

from __future__ import annotations

from sandbox.config import SandboxConfig
from sandbox.faults import FaultRule
from sandbox.server import Sandbox

__all__ = ["FaultRule", "Sandbox", "SandboxConfig"]
