"""The local Vonage sandbox's WSGI app for gunicorn, so it keeps connections alive.

The sandbox's own server (werkzeug) answers ``Connection: close`` to every request, so no client
can reuse a connection with it, and every request would pay a TLS handshake. Connection reuse
is part of what the CPU benchmark compares, so there the same app is served by gunicorn
(``--certfile``/``--keyfile`` for TLS), configured from ``SANDBOX_*`` variables as
``python -m sandbox serve`` is.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # Built in the gunicorn worker on first access: its webhook thread must live there.
    if name == "app":
        from sandbox.app import SandboxApp
        from sandbox.config import SandboxConfig
        from sandbox.context import SandboxContext

        global app
        ctx = SandboxContext(SandboxConfig.from_env(), clock=time.time)
        ctx.dispatcher.start()
        app = SandboxApp(ctx)
        return app
    raise AttributeError(name)
