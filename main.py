"""Entry points for Google Cloud Functions (functions-framework loads main.py from the source root).

Deploy each one on its own: ``--entry-point send`` and so on (see deploy.sh). ``on_inbound`` is a
CloudEvent function (a Pub/Sub trigger); the others are HTTP functions.

Each entry point is imported on first access (a module ``__getattr__``, PEP 562):
functions-framework asks main.py for its one target, so a deployed function loads its own module
and not the nine others (nor the event code ``on_inbound`` brings) before its first answer.
``from main import send`` and ``main.send`` work as with plain imports.
"""

from __future__ import annotations

import importlib
from typing import Any

# entry point -> the module defining it (an attribute of the same name).
_ENTRY_POINTS: dict[str, str] = {
    "balance": "functions.balance",
    "deliver": "functions.deliver",
    "inbound": "functions.inbound",
    "on_inbound": "functions.on_inbound",
    "send": "functions.send",
    "status": "functions.status",
    "verify_cancel": "functions.verify_cancel",
    "verify_check": "functions.verify_check",
    "verify_next": "functions.verify_next",
    "verify_start": "functions.verify_start",
}

__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = getattr(importlib.import_module(module), name)
    if getattr(function, "event_types", None) is not None:
        # A consumer: its module may have been imported before functions-framework was (a test,
        # a tool); declaring it here too means the framework serving main.py always finds it.
        from shared.events.consumer import declare_cloud_event

        declare_cloud_event(function)
    globals()[name] = function
    return function


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
