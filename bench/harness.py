"""Plumbing every benchmark shares: child processes, loopback HTTP, statistics, the machine.

Everything here talks to 127.0.0.1 only and is bounded: a child process runs in its own
process group and is stopped by that group's id (SIGTERM, then SIGKILL), every wait has a
deadline, every socket a timeout.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.ports import free_port  # ports below the ephemeral range (see there why)

__all__ = [
    "BenchError",
    "Child",
    "Connection",
    "ROOT",
    "Response",
    "SERVE_FLAGS",
    "base_env",
    "free_port",
    "functions_framework_command",
    "gunicorn_command",
    "machine_info",
    "median",
    "percentile",
    "request",
    "wait_for_answer",
]

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# scripts/serve.sh's gunicorn settings (the Replit deployment), bound to loopback instead of
# 0.0.0.0: every server in a comparison runs with exactly these.
# fmt: off
SERVE_FLAGS = (
    "--workers", "1",
    "--worker-class", "gthread",
    "--threads", "8",
    "--timeout", "120",  # a gthread worker keeps beating while a long bulk send runs
    "--graceful-timeout", "20",
    "--log-level", "info",
)
# fmt: on
# Variables of the bench's own environment that must not leak into a child: credentials,
# store choice, proxies (all traffic is loopback) and DEBUG (it swaps gunicorn for Flask's server).
_DROPPED_PREFIXES = ("VONAGE_", "STATE_", "FIRESTORE_", "GOOGLE_", "SANDBOX_", "BULK_", "VERIFY_", "WEBHOOK_")
_DROPPED = frozenset(
    {
        "API_TOKENS",
        "DEBUG",
        "GCLOUD_PROJECT",
        "K_SERVICE",
        "INBOUND_HANDLER",
        "LOG_LEVEL",
        "PORT",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "THREADS",
        "WORKERS",
        "WEB_CONCURRENCY",
    }
)


class BenchError(RuntimeError):
    """A benchmark could not run (a server did not start, an answer was wrong)."""


# ---- environment and commands ------------------------------------------------------------


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours minus anything that would change what it measures."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def functions_framework_command(target: str, source: str, port: int) -> list[str]:
    """``functions-framework --target T --source S`` on 127.0.0.1:port, with this Python."""
    return [
        PYTHON,
        "-m",
        "functions_framework",
        "--target",
        target,
        "--source",
        source,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def gunicorn_command(app: str, port: int) -> list[str]:
    """gunicorn with scripts/serve.sh's settings, serving ``app`` (``module:attr``) on 127.0.0.1."""
    return [PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *SERVE_FLAGS, app]


# ---- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    """A process started in its own process group; ``stop()`` ends the whole group."""

    command: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    cwd: Path = ROOT  # another tree (bench.reference) serves an earlier version of the code

    def start(self) -> Child:
        """Start it; ``started_at`` is the perf_counter just before the process was created."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            list(self.command),
            cwd=self.cwd,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: gunicorn's workers go with it
        )
        log.close()  # the child holds its own descriptor
        return self

    @property
    def pid(self) -> int:
        """The process id (BenchError before start)."""
        if self.popen is None:
            raise BenchError("the process was not started")
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None

    def children(self) -> list[int]:
        """Ids of this process's direct children (gunicorn's workers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.pid:
                found.append(int(entry.name))
        return sorted(found)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL what is left. Safe to call twice."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # start_new_session: the group id is the leader's pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break  # the whole group is gone
            deadline = time.monotonic() + wait
            while _group_alive(pgid) and time.monotonic() < deadline:
                self.popen.poll()  # reap the leader, or it lingers as a zombie in the group
                time.sleep(0.02)
            if not _group_alive(pgid):
                break
        try:
            self.popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, lines: int = 20) -> str:
        """The end of the child's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


# ---- HTTP on loopback ----------------------------------------------------------------------


@dataclass
class Response:
    """A status, lower-cased headers and the raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened after a failure."""

    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request and read the whole answer; ``OSError`` / ``HTTPException`` on failure."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=body, headers=dict(headers or {}))
            answer = self._conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if answer.will_close:
            self.close()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> Response:
    """One request on a fresh connection."""
    conn = Connection(port, timeout=timeout)
    try:
        return conn.request(method, path, body, headers)
    finally:
        conn.close()


def wait_for_answer(
    child: Child,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    deadline: float = 60.0,
    poll: float = 0.002,
) -> tuple[float, Response]:
    """Seconds from the child's start to the first answer on ``port``, and that answer.

    Connections refused (nothing listening yet) are retried every ``poll`` seconds; an accepted
    connection waits for its answer (gunicorn binds before its worker has loaded the app).
    """
    limit = time.monotonic() + deadline
    while True:
        if not child.alive():
            raise BenchError(f"{child.command[2:5]} exited before answering:\n{child.tail()}")
        try:
            answer = request(port, method, path, body, headers, timeout=deadline)
            return time.perf_counter() - child.started_at, answer
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            if time.monotonic() > limit:
                raise BenchError(f"no answer on port {port} within {deadline:.0f} s:\n{child.tail()}") from None
            time.sleep(poll)


# ---- statistics -----------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---- the machine -----------------------------------------------------------------------------


@dataclass
class Machine:
    """What the numbers were measured on."""

    cpu_model: str
    cpus: int
    memory_gib: float
    python: str
    platform: str
    load_before: tuple[float, float, float]
    packages: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "cpu_model": self.cpu_model,
            "cpus": self.cpus,
            "memory_gib": self.memory_gib,
            "python": self.python,
            "platform": self.platform,
            "load_before": list(self.load_before),
            "packages": dict(self.packages),
        }


def machine_info() -> Machine:
    """CPU model (/proc/cpuinfo), CPUs (nproc), memory (/proc/meminfo), Python, key packages."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    from importlib import metadata

    packages = {}
    for name in ("functions-framework", "Flask", "gunicorn", "httpx", "vonage", "google-cloud-firestore"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return Machine(
        cpu_model=model,
        cpus=cpus,
        memory_gib=round(memory, 1),
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        load_before=os.getloadavg(),
        packages=packages,
    )
