"""The Verify state machine both Verify APIs share, with Vonage's rules (vonage-api.md §8.5, §9).

- A request walks its workflow one step (channel) at a time; a step that is not completed
  within ``step_timeout`` hands over to the next one, and after the last one the request
  expires. Time is read from the injected clock on every call, so tests move a fake clock
  instead of sleeping.
- Three wrong codes end a request (failed).
- One request in flight per number and API: a second start is refused with the first one's id.
- Cancel only ``cancel_after`` seconds after the start and before the second step began.
- A completed request is "already verified"; an ended one accepts nothing more.

The engine knows nothing of HTTP: each call returns an ``Outcome`` and the ``Effect``s to
carry out (a code to put in an inbox, a Verify v2 callback to send). Effects hold a snapshot
of the request, taken when they happened.
"""

from __future__ import annotations

import copy
import enum
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConcurrentVerificationError",
    "Effect",
    "MAX_WRONG_CODES",
    "Outcome",
    "Step",
    "Verification",
    "VerifyEngine",
]

MAX_WRONG_CODES = 3


class Outcome(enum.Enum):
    """What a check, cancel or next-step call came to."""

    OK = "ok"
    WRONG_CODE = "wrong_code"
    TOO_MANY = "too_many"  # this wrong code was the last one allowed: the request failed
    NOT_FOUND = "not_found"
    ALREADY_VERIFIED = "already_verified"
    INACTIVE = "inactive"  # failed, expired or cancelled
    TOO_EARLY = "too_early"  # cancel within cancel_after of the start
    TOO_LATE = "too_late"  # cancel after the second step began
    NO_MORE_STEPS = "no_more_steps"


@dataclass
class Step:
    """One channel of a workflow, e.g. an SMS to a number."""

    channel: str
    to: str
    sender: str | None = None
    status: str = "unused"  # unused | in_progress | completed | failed | expired
    started_at: float | None = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Verification:
    """One verification request and its progress."""

    request_id: str
    api: str  # v2 | legacy
    number: str  # the first step's destination: one request in flight per number
    brand: str
    code: str = field(repr=False)
    steps: list[Step]
    step_timeout: float
    created_at: float
    client_ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "in_progress"  # in_progress | completed | failed | expired | cancelled
    current: int = 0
    wrong_codes: int = 0
    finalized_at: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_active(self) -> bool:
        """True while a code can still be checked."""
        return self.status == "in_progress"

    @property
    def step(self) -> Step:
        """The step in progress (or the last one reached)."""
        return self.steps[self.current]


@dataclass(frozen=True)
class Effect:
    """Something to do because of a state change: ``code_sent``, ``event`` or ``summary``."""

    kind: str
    verification: Verification  # a snapshot taken when it happened
    step: Step | None = None
    status: str | None = None
    at: float = 0.0


class ConcurrentVerificationError(Exception):
    """A request to this number is already in flight; ``existing`` is it."""

    def __init__(self, existing: Verification) -> None:
        super().__init__("Concurrent verifications to the same number are not allowed")
        self.existing = existing


class VerifyEngine:
    """Every verification request of one sandbox, with Vonage's rules (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: dict[str, Verification] = {}

    def start(
        self,
        *,
        api: str,
        brand: str,
        steps: list[Step],
        step_timeout: float,
        code_length: int = 4,
        code: str | None = None,
        client_ref: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[Verification, list[Effect]]:
        """Open a request and send its first code; ConcurrentVerificationError if one is in flight."""
        now = self._clock()
        effects: list[Effect] = []
        with self._lock:
            number = steps[0].to
            for other in self._requests.values():
                if other.api == api and other.number == number and other.is_active:
                    self._refresh(other, now, effects)
                    if other.is_active:
                        raise ConcurrentVerificationError(copy.deepcopy(other))
            verification = Verification(
                request_id=str(uuid.uuid4()) if api == "v2" else uuid.uuid4().hex,
                api=api,
                number=number,
                brand=brand,
                code=code or "".join(secrets.choice("0123456789") for _ in range(code_length)),
                steps=steps,
                step_timeout=step_timeout,
                created_at=now,
                client_ref=client_ref,
                extra=dict(extra or {}),
            )
            self._requests[verification.request_id] = verification
            self._begin_step(verification, 0, now, effects)
        return copy.deepcopy(verification), effects

    def check(self, request_id: str, code: str) -> tuple[Outcome, Verification | None, list[Effect]]:
        """Check a code: OK, WRONG_CODE, TOO_MANY, NOT_FOUND, ALREADY_VERIFIED or INACTIVE."""
        now = self._clock()
        effects: list[Effect] = []
        with self._lock:
            verification = self._find(request_id, now, effects)
            if verification is None:
                return Outcome.NOT_FOUND, None, effects
            if not verification.is_active:
                outcome = Outcome.ALREADY_VERIFIED if verification.status == "completed" else Outcome.INACTIVE
                return outcome, copy.deepcopy(verification), effects
            right = hmac.compare_digest(code.strip().encode("utf-8"), verification.code.encode("utf-8"))
            verification.checks.append({"at": now, "status": "VALID" if right else "INVALID"})
            if right:
                self._finish(verification, "completed", now, effects, step_status="completed")
                outcome = Outcome.OK
            else:
                verification.wrong_codes += 1
                if verification.wrong_codes >= MAX_WRONG_CODES:
                    self._finish(verification, "failed", now, effects, step_status="failed")
                    outcome = Outcome.TOO_MANY
                else:
                    outcome = Outcome.WRONG_CODE
            return outcome, copy.deepcopy(verification), effects

    def cancel(self, request_id: str, *, cancel_after: float) -> tuple[Outcome, Verification | None, list[Effect]]:
        """Cancel: OK, NOT_FOUND, ALREADY_VERIFIED, INACTIVE, TOO_EARLY or TOO_LATE."""
        now = self._clock()
        effects: list[Effect] = []
        with self._lock:
            verification = self._find(request_id, now, effects)
            if verification is None:
                return Outcome.NOT_FOUND, None, effects
            if not verification.is_active:
                outcome = Outcome.ALREADY_VERIFIED if verification.status == "completed" else Outcome.INACTIVE
                return outcome, copy.deepcopy(verification), effects
            if now - verification.created_at < cancel_after:
                return Outcome.TOO_EARLY, copy.deepcopy(verification), effects
            if verification.current >= 1:
                return Outcome.TOO_LATE, copy.deepcopy(verification), effects
            verification.status = "cancelled"
            verification.finalized_at = now
            verification.step.status = "expired"
            return Outcome.OK, copy.deepcopy(verification), effects

    def next_step(self, request_id: str) -> tuple[Outcome, Verification | None, list[Effect]]:
        """Move on to the next channel now: OK, NOT_FOUND, ALREADY_VERIFIED, INACTIVE or NO_MORE_STEPS."""
        now = self._clock()
        effects: list[Effect] = []
        with self._lock:
            verification = self._find(request_id, now, effects)
            if verification is None:
                return Outcome.NOT_FOUND, None, effects
            if not verification.is_active:
                outcome = Outcome.ALREADY_VERIFIED if verification.status == "completed" else Outcome.INACTIVE
                return outcome, copy.deepcopy(verification), effects
            if verification.current + 1 >= len(verification.steps):
                return Outcome.NO_MORE_STEPS, copy.deepcopy(verification), effects
            verification.step.status = "expired"
            self._begin_step(verification, verification.current + 1, now, effects)
            return Outcome.OK, copy.deepcopy(verification), effects

    def get(self, request_id: str) -> tuple[Verification | None, list[Effect]]:
        """The request as of now (a copy), or None."""
        effects: list[Effect] = []
        with self._lock:
            verification = self._find(request_id, self._clock(), effects)
            return (copy.deepcopy(verification) if verification else None), effects

    def tick(self) -> list[Effect]:
        """Advance every request to the current time (steps handed over, requests expired)."""
        now = self._clock()
        effects: list[Effect] = []
        with self._lock:
            for verification in self._requests.values():
                self._refresh(verification, now, effects)
        return effects

    def reset(self) -> None:
        """Forget every request."""
        with self._lock:
            self._requests.clear()

    # ---- internals (lock held) -------------------------------------------

    def _find(self, request_id: str, now: float, effects: list[Effect]) -> Verification | None:
        verification = self._requests.get(request_id)
        if verification is not None:
            self._refresh(verification, now, effects)
        return verification

    def _begin_step(self, verification: Verification, index: int, at: float, effects: list[Effect]) -> None:
        verification.current = index
        step = verification.steps[index]
        step.status = "in_progress"
        step.started_at = at
        effects.append(Effect("code_sent", copy.deepcopy(verification), copy.deepcopy(step), at=at))

    def _refresh(self, verification: Verification, now: float, effects: list[Effect]) -> None:
        """Hand over timed-out steps and expire the request after its last one."""
        while verification.is_active:
            step = verification.step
            assert step.started_at is not None
            deadline = step.started_at + verification.step_timeout
            if now < deadline:
                return
            step.status = "expired"
            if verification.current + 1 < len(verification.steps):
                self._begin_step(verification, verification.current + 1, deadline, effects)
            else:
                verification.status = "expired"
                verification.finalized_at = deadline
                effects.append(Effect("summary", copy.deepcopy(verification), status="expired", at=deadline))

    def _finish(
        self, verification: Verification, status: str, now: float, effects: list[Effect], *, step_status: str
    ) -> None:
        verification.status = status
        verification.finalized_at = now
        verification.step.status = step_status
        effects.append(Effect("event", copy.deepcopy(verification), copy.deepcopy(verification.step), status, now))
        effects.append(Effect("summary", copy.deepcopy(verification), status=status, at=now))
