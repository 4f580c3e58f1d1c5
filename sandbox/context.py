"""SandboxContext: the one object every handler gets (config, clock, state, faults, webhooks, verify)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.devphone import DevPhoneState
from sandbox.faults import FaultInjector
from sandbox.state import SandboxState
from sandbox.verify import VerifyEngine
from sandbox.webhooks import WebhookDispatcher

__all__ = ["SandboxContext"]


class SandboxContext:
    """Shared run-time state of one sandbox. The config is replaced whole, never mutated."""

    def __init__(self, config: SandboxConfig, *, clock: Callable[[], float]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._public_key: Any = None
        self.clock = clock
        self.state = SandboxState(config.balance, clock=clock)
        self.faults = FaultInjector(config.faults, seed=config.seed)
        self.dispatcher = WebhookDispatcher(lambda: self.config, clock=clock)
        self.verify = VerifyEngine(clock=clock)
        self.devphone = DevPhoneState()  # the dev phone page's link to the app (sandbox.devphone)
        # Set on stop: a held response (timeout fault) or a delay returns at once.
        self.stopping = threading.Event()
        # Other parts of the loop the sandbox's traffic sets in motion (the local run adds the app's
        # event bus, whose consumer sends the bot's reply): wait_idle waits for them too.
        self.idle_waiters: list[Callable[[float], bool]] = []

    def wait_idle(self, timeout: float) -> bool:
        """Until the webhook queue and every idle waiter are idle at the same moment; False on timeout.

        Each stage queues its follow-up before it counts as done (a webhook publishes its event, a
        reply queues its receipt), so one pass that finds every stage already idle means the loop
        has settled.
        """
        deadline = time.monotonic() + timeout
        stages = (self.dispatcher.wait_idle, *self.idle_waiters)
        while True:
            for wait in stages:
                if not wait(max(deadline - time.monotonic(), 0.0)):
                    return False
            if all(wait(0.0) for wait in stages):
                return True

    @property
    def config(self) -> SandboxConfig:
        """The current configuration."""
        with self._lock:
            return self._config

    def update_config(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """Apply ``changes`` (ValueError on bad input); balance and faults take effect at once."""
        with self._lock:
            new = self._config.updated(changes)
            self._config = new
            if {"private_key", "public_key"} & set(changes):
                self._public_key = None
        if "balance" in changes:
            self.state.set_balance(new.balance)
        if "faults" in changes or "seed" in changes:
            self.faults.configure(new.faults, seed=new.seed if "seed" in changes else None)
        return new

    def public_key(self) -> Any:
        """The application's public key (from public_key, or derived from private_key), or None."""
        with self._lock:
            config = self._config
            if self._public_key is None and (config.public_key or config.private_key):
                if config.public_key:
                    self._public_key = config.public_key
                else:
                    from shared.vonage.auth import load_private_key

                    assert config.private_key is not None
                    self._public_key = load_private_key(config.private_key).public_key()
            return self._public_key

    def hold(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the sandbox stops meanwhile."""
        if seconds > 0:
            self.stopping.wait(seconds)

    def reset(self) -> None:
        """Forget messages, requests, inbox, verifications and deliveries; restore the balance."""
        self.state.reset()
        self.verify.reset()
        self.dispatcher.reset()
        self.devphone.reset()
        config = self.config
        self.faults.configure(config.faults, seed=config.seed)
