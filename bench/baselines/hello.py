"""Baseline: the bare functions-framework hello function (Google's HTTP sample, nothing else)."""

from __future__ import annotations

from typing import Any

import functions_framework

__all__ = ["hello"]


@functions_framework.http
def hello(request: Any) -> str:
    """Answer every request with a greeting."""
    return "Hello, World!"
