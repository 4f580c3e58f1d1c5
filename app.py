"""Every function in one WSGI process: Replit, local runs, AWS Lambda, any WSGI host.

Each function is mounted under its own path (``/send``, ``/verify-start``, ...) with
the mount prefix stripped, so a handler sees the same request it would see deployed
alone under functions-framework (where every path reaches the one function).
``/healthz`` answers without touching Vonage; ``/readyz`` also pings the store;
``/openapi.yaml`` and ``/openapi.json`` serve the OpenAPI document.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FUNCTIONS", "OPENAPI_DIR", "create_app", "app"]

# openapi.yaml (the source) and openapi.json (generated from it), served at /openapi.yaml and /openapi.json.
OPENAPI_DIR = pathlib.Path(__file__).resolve().parent / "openapi"

# path -> (module, entry point). The names are main.py's exports.
FUNCTIONS: dict[str, tuple[str, str]] = {
    "/send": ("functions.send", "send"),
    "/verify-start": ("functions.verify_start", "verify_start"),
    "/verify-check": ("functions.verify_check", "verify_check"),
    "/verify-cancel": ("functions.verify_cancel", "verify_cancel"),
    "/verify-next": ("functions.verify_next", "verify_next"),
    "/inbound": ("functions.inbound", "inbound"),
    "/status": ("functions.status", "status"),
    "/balance": ("functions.balance", "balance"),
    "/deliver": ("functions.deliver", "deliver"),
}


def function_app(name: str, handler: Callable[[Any], Any]) -> Any:
    """A WSGI app that hands every path and method to ``handler``, as functions-framework does."""
    import flask

    app = flask.Flask(name)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

    def view(path: str = "") -> Any:
        return handler(flask.request._get_current_object())

    app.add_url_rule("/", "root", view, methods=methods, strict_slashes=False)
    app.add_url_rule("/<path:path>", "path", view, methods=methods)
    # A path the rule cannot match (one with a newline in it) or a method not listed above would
    # get Flask's HTML error page; they belong to the function too, which answers in JSON.
    app.register_error_handler(404, lambda _: view())
    app.register_error_handler(405, lambda _: view())
    return app


class LazyFunctionApp:
    """One function's WSGI app, built at its first request (issue 18: cold start).

    The one-process app serves nine functions; a process that is asked for one (a Replit repl
    woken by a send, a Lambda invocation) should not import the other eight first. ``/readyz``
    builds every one, so a function that cannot load still shows before traffic needs it.
    """

    def __init__(self, module_name: str, attr: str) -> None:
        self.module_name, self.attr = module_name, attr
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._app is not None

    def load(self) -> Any:
        """The function's app; raises ConfigError (500 misconfigured) when its code cannot load."""
        if self._app is None:
            with self._lock:  # threaded servers: the first requests may arrive together
                if self._app is None:
                    try:
                        handler = getattr(importlib.import_module(self.module_name), self.attr)
                    except Exception as exc:
                        from shared.errors import ConfigError
                        from shared.log import get_logger

                        get_logger("app").error("a function could not be loaded", extra={"function": self.attr, "error": type(exc).__name__})
                        raise ConfigError(f"the {self.attr} function could not be loaded ({type(exc).__name__})") from None
                    self._app = function_app(self.attr, handler)
        return self._app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from shared.errors import ConfigError

        try:
            app = self.load()
        except ConfigError as exc:
            body = json.dumps(exc.to_dict()).encode()
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)


def create_app(functions: dict[str, tuple[str, str]] | None = None, *, queue_worker: bool = False) -> Any:
    """The one-process app: each function mounted at its path, plus health checks.

    ``queue_worker=True`` (the served app) also starts the embedded queue's worker threads
    when QUEUE_BACKEND resolves to ``embedded`` (docs/queue.md).
    """
    import flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    mounts = {path: LazyFunctionApp(module_name, attr) for path, (module_name, attr) in (functions or FUNCTIONS).items()}

    root = flask.Flask("vonage_functions")

    @root.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok", "functions": sorted(mounts)}

    @root.get("/readyz")
    def readyz() -> Any:
        from shared.deps import get_store
        from shared.errors import ServiceError
        from shared.web import error_response

        from shared.deps import get_settings
        from shared.vonage.auth import load_private_key

        try:
            for mount in mounts.values():
                mount.load()  # an import error is a deployment that cannot serve: not ready
            settings = get_settings()
            if settings.private_key:
                # A VONAGE_PRIVATE_KEY naming a missing or unreadable file would only fail on the
                # first Messages / Verify v2 call: not ready.
                load_private_key(settings.private_key)
            store = get_store()
            store.ping()
        except ServiceError as exc:
            return error_response(exc)
        return {"status": "ok", "store": store.name}

    @root.get("/")
    def index() -> Any:
        return {"service": "vonage-functions", "functions": sorted(mounts), "health": "/healthz", "openapi": "/openapi.json"}

    @root.get("/openapi.json")
    @root.get("/openapi.yaml")
    def openapi() -> Any:
        # The document is a file kept in the repository (openapi/); the JSON copy is generated
        # from the YAML and a test keeps them equal, so no YAML parser is needed at run time.
        name = flask.request.path.lstrip("/")
        path = OPENAPI_DIR / name
        if not path.is_file():
            return {"error": {"code": "not_found", "message": "the OpenAPI document is not part of this deployment"}}, 404
        mimetype = "application/json" if name.endswith(".json") else "application/yaml"
        return flask.Response(path.read_bytes(), mimetype=mimetype)

    @root.errorhandler(404)
    def not_found(_: Any) -> Any:
        return {"error": {"code": "not_found", "message": f"no function at this path; try one of {', '.join(sorted(mounts))}"}}, 404

    @root.errorhandler(405)
    def not_allowed(_: Any) -> Any:
        return {"error": {"code": "method_not_allowed", "message": "this path does not take that method"}}, 405

    root.wsgi_app = DispatcherMiddleware(root.wsgi_app, mounts)  # type: ignore[method-assign]
    if queue_worker:
        _start_queue_worker()
    return root


def _start_queue_worker() -> None:
    from shared.log import get_logger

    try:
        from shared.queue.worker import start_worker

        start_worker()
    except Exception as exc:  # a bad setting must not stop the app from serving its errors
        get_logger("app").error("the embedded queue worker did not start", extra={"error": type(exc).__name__})


def __getattr__(name: str) -> Any:
    # `gunicorn app:app` builds the app on first access, not when tests import this module.
    if name == "app":
        global app
        app = create_app(queue_worker=True)
        return app
    raise AttributeError(name)
