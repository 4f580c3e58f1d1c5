"""Who our callers are: named API tokens with scopes, and what each may read.

``API_TOKENS`` takes either the plain list of tokens (``TOKEN1,TOKEN2``: every one is the
``default`` tenant with every scope but ``admin``, as before) or named entries
``name:TOKEN:scope+scope`` (``shop:TOKEN1:send+verify,ops:TOKEN2:*``), mixed freely.

Scopes: ``send`` (send and read its own messages), ``verify`` (start, check, cancel its own
verifications), ``inbound`` (list inbound messages, which belong to the account), ``balance``
(read the account balance) and ``admin`` (read and act on every tenant's records). ``*`` is
every scope, ``admin`` included.

Records a caller creates carry its tenant name; reads, checks and cancels by another tenant
answer as if the record did not exist (404), so ids cannot be probed across tenants.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ADMIN", "DEFAULT_SCOPES", "DEFAULT_TENANT", "SCOPES", "ApiCaller", "can_see", "parse_api_tokens"]

SCOPES = ("send", "verify", "inbound", "balance", "admin")
ADMIN = "admin"
DEFAULT_TENANT = "default"
DEFAULT_SCOPES = frozenset({"send", "verify", "inbound", "balance"})
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")


@dataclass(frozen=True)
class ApiCaller:
    """One API token: the tenant it acts for and what it may do. ``repr`` never shows the token."""

    name: str
    token: str = field(repr=False)
    scopes: frozenset[str] = DEFAULT_SCOPES

    def can(self, scope: str) -> bool:
        """True when the token carries ``scope`` (or is an admin)."""
        return self.is_admin or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        """True for a token that reads every tenant's records."""
        return ADMIN in self.scopes


def parse_api_tokens(items: Iterable[str]) -> tuple[tuple[ApiCaller, ...], list[str]]:
    """The callers named by API_TOKENS entries, and the problems found (never echoing a token)."""
    callers: list[ApiCaller] = []
    problems: list[str] = []
    for position, item in enumerate(items, start=1):
        parts = item.split(":")
        if len(parts) == 1:
            callers.append(ApiCaller(DEFAULT_TENANT, item))
            continue
        if len(parts) != 3 or not parts[1]:
            problems.append(f"API_TOKENS entry {position} must be TOKEN or name:TOKEN:scope+scope")
            continue
        name, token, scope_text = parts
        scopes = {s.strip().lower() for s in scope_text.split("+") if s.strip()}
        if "*" in scopes:
            scopes = set(SCOPES)
        unknown = scopes - set(SCOPES)
        if not _NAME.fullmatch(name) or not scopes or unknown:
            problems.append(
                f"API_TOKENS entry {position} needs a name of letters, digits, '_', '-' or '.' and scopes from "
                f"{', '.join(SCOPES)} or *"
            )
            continue
        callers.append(ApiCaller(name, token, frozenset(scopes)))
    return tuple(callers), problems


def can_see(record_tenant: str | None, caller: ApiCaller | None) -> bool:
    """Whether ``caller`` may read or act on a record of ``record_tenant``.

    ``caller`` None is the service itself or a public (browser) verify caller: not scoped.
    Records written before tenants existed belong to the default tenant.
    """
    if caller is None or caller.is_admin:
        return True
    return (record_tenant or DEFAULT_TENANT) == caller.name
