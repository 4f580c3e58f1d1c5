"""Baseline: a no-op function, mounted in the one-process app exactly where inbound and status are.

``app`` is ``app.create_app()`` with ``/inbound`` and ``/status`` served by :func:`noop`, so the
server, the mounting and the Flask request handling match the real app; only the work differs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "noop"]


def noop(request: Any) -> Any:
    """Read the body (as a webhook must) and answer 200 with a fixed JSON body."""
    from flask import Response

    request.get_data()
    return Response('{"result":"noop"}', status=200, mimetype="application/json")


def __getattr__(name: str) -> Any:
    # Built on first access, like app.py's own `app`, so importing this module stays cheap.
    if name == "app":
        from app import create_app

        global app
        app = create_app({"/inbound": (__name__, "noop"), "/status": (__name__, "noop")})
        return app
    raise AttributeError(name)
