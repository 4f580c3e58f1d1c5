"""The Firestore emulator, started like ./test.sh starts it and stopped by its process group."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.harness import Child, base_env, free_port, request

__all__ = ["FirestoreEmulator"]


class FirestoreEmulator:
    """``gcloud emulators firestore start`` on a free loopback port (``unavailable`` says why not)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = 0
        self.child: Child | None = None
        self.unavailable: str | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` for FIRESTORE_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> bool:
        """Start it and wait until it answers; False (with ``unavailable`` set) when it cannot."""
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            self.unavailable = "the gcloud CLI is not installed"
            return False
        self.port = free_port()
        # setsid (start_new_session) as in test.sh: the Java child dies with the group.
        command = [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}", "--quiet"]
        self.child = Child(command, base_env(), self.log_dir / "firestore-emulator.log").start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                self.unavailable = "the emulator exited: " + self.child.tail(5)
                return False
            try:
                if request(self.port, "GET", "/", timeout=2.0).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        self.unavailable = f"the emulator did not answer within {timeout:.0f} s"
        self.stop()
        return False

    def stop(self) -> None:
        """Stop the emulator's whole process group."""
        if self.child is not None:
            self.child.stop()
            self.child = None
