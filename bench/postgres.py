"""A PostgreSQL server for the benchmarks, started like scripts/services/postgres.sh starts one.

``BENCH_POSTGRES_URL`` (or ``POSTGRES_TEST_URL``, which ./test.sh exports) names a server to use
instead; otherwise the installed server binaries (/usr/lib/postgresql/*/bin, or initdb on PATH)
``initdb`` a throwaway cluster in a temporary directory (as the ``postgres`` user when run as
root: initdb and postgres refuse root), start it on a free 127.0.0.1 port and delete it after.
Every run gets a database of its own (:meth:`PostgresServer.new_database`), so none sees another's rows.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from bench.harness import free_port

__all__ = ["PostgresServer"]


def _bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresServer:
    """A running PostgreSQL server (``unavailable`` says why there is none)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.url = ""
        self.unavailable: str | None = None
        self._dir: str | None = None
        self._bindir: str | None = None
        self._run_as: list[str] = []
        self._databases: list[str] = []

    def start(self) -> bool:
        """Use the named server or start one; False (with ``unavailable`` set) when neither works."""
        given = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("POSTGRES_TEST_URL")
        if given:
            self.url = given
            return True
        self._bindir = _bindir()
        if self._bindir is None:
            self.unavailable = "PostgreSQL is not installed (scripts/services/postgres.sh installs it)"
            return False
        self._dir = tempfile.mkdtemp(prefix="vf-bench-postgres-")
        if os.geteuid() == 0:
            self._run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self._dir, "postgres")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / "postgres.log"
        port = free_port()
        data = os.path.join(self._dir, "data")
        try:
            with open(log, "ab") as out:
                subprocess.run(
                    [*self._run_as, f"{self._bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--locale=C"],
                    stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120,
                )
                # Settings as a small hosted database would have them; fsync stays on (it is measured).
                subprocess.run(
                    [*self._run_as, f"{self._bindir}/pg_ctl", "-D", data, "-l", os.path.join(self._dir, "server.log"),
                     "-w", "-t", "60", "-o", f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1", "start"],
                    stdout=out, stderr=subprocess.STDOUT, check=True, timeout=90,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            self.unavailable = f"the server did not start ({type(exc).__name__}); see {log}"
            self._remove()
            return False
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return True

    def new_database(self) -> str:
        """The URL of a new, empty database on the server (dropped by :meth:`stop`)."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        name = "vf_bench_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return make_conninfo(self.url, dbname=name)

    def stop(self) -> None:
        """Drop the databases made here; stop and delete a server started here."""
        if self._databases and self.url:
            import psycopg

            try:
                with psycopg.connect(self.url, autocommit=True) as admin:
                    for name in self._databases:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass  # a server that is going away takes its databases with it
            self._databases = []
        if self._dir is not None and self._bindir is not None:
            subprocess.run(
                [*self._run_as, f"{self._bindir}/pg_ctl", "-D", os.path.join(self._dir, "data"), "-m", "fast",
                 "-w", "-t", "30", "stop"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60,
            )
        self._remove()

    def _remove(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
