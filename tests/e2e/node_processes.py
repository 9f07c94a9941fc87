"""The node as separate processes, the way compose.yaml runs it on PostgreSQL + Redis.

`SplitNode` stands in for `trade_clients.NodeProcess` (`start_trade_network(..., node_factory=…)`):
the web process (`manage.py mostrod --no-cluster --no-bridge --no-watcher`), N relay bridges
(`manage.py nostr_bridge --worker-id bridge-N`), the invoice watcher (`manage.py invoice_watcher`)
and the job cluster (`manage.py run_jobs`, which forks django-q2's sentinel, pusher, workers and
monitor), each its own process group, all on the database and Redis named in the environment.
`prepare()` migrates and, on PostgreSQL, flushes the database first: never point it at one whose
rows matter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.e2e.trade_clients import BANNER, DIE_WITH_PARENT, NODE_START_TIMEOUT_S, NodeProcess
from tests.ops.deploy_run import Launched
from tests.relays.net import REPO_ROOT

WEB = "web"
WATCHER = "watcher"
JOBS = "jobs"
# What each kind of process prints (stdout or log) once it serves; the watcher and the job
# cluster print nothing of the kind, so they count as started once they survived this long.
READY_TEXT = {WEB: BANNER, "bridge": "READY"}
SETTLE_S = 2.0


def split_commands(*, port: int, bridges: int, grace_s: float = 5.0) -> dict[str, list[str]]:
    """The node's processes by name, each a `manage.py` command line (compose.yaml's services)."""
    web = ["mostrod", "--port", str(port), "--no-migrate", "--no-cluster", "--no-bridge", "--no-watcher"]
    commands = {WEB: [*web, "--grace", str(grace_s)]}
    for index in range(1, bridges + 1):
        name = f"bridge-{index}"
        commands[name] = ["nostr_bridge", "--worker-id", name, "--grace", str(grace_s)]
    commands[WATCHER] = ["invoice_watcher"]
    commands[JOBS] = ["run_jobs"]
    return {name: [sys.executable, "manage.py", *argv] for name, argv in commands.items()}


def ready_text(name: str) -> str | None:
    return READY_TEXT.get(name.split("-", 1)[0])


class SplitNode(NodeProcess):
    """web + `bridges` bridges + watcher + job cluster as separate processes (see the module doc)."""

    def __init__(self, env: dict[str, str], workdir: Path, *, bridges: int = 2, port: int | None = None) -> None:
        super().__init__(env, workdir, port=port)
        self.bridges = bridges
        self.processes: dict[str, Launched] = {}

    @property
    def on_postgres(self) -> bool:
        return self.env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))

    @property
    def output(self) -> str:
        return "\n".join(f"== {p.name}\n{p.output[-4000:]}" for p in self.processes.values())

    def prepare(self) -> None:
        flush = "call_command('flush', interactive=False, verbosity=0); " if self.on_postgres else ""
        self.shell(
            "from django.core.management import call_command; call_command('migrate', verbosity=0); "
            f"{flush}from orders.pricing.refresh import refresh_prices; print(refresh_prices())"
        )

    def start(self, *args: str) -> None:
        if args:
            raise ValueError(f"SplitNode takes no mostrod arguments: {args}")
        try:
            for name, argv in split_commands(port=self.port, bridges=self.bridges).items():
                self.processes[name] = self._launch(name, argv)
            for started in self.processes.values():
                self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.proc = self.processes[WEB].proc

    def _launch(self, name: str, argv: list[str]) -> Launched:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [*DIE_WITH_PARENT, *argv], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return Launched(name, proc, log_path)

    def _wait_ready(self, started: Launched) -> None:
        text = ready_text(started.name)
        launched = time.monotonic()
        deadline = launched + NODE_START_TIMEOUT_S
        while (text not in started.output) if text else (time.monotonic() - launched < SETTLE_S):
            if started.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{started.name} did not start:\n{started.output[-4000:]}")
            time.sleep(0.1)
        if started.proc.poll() is not None:
            raise RuntimeError(f"{started.name} exited at start:\n{started.output[-4000:]}")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self.on_postgres:
            return super().query(sql, params)
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"]) as db:
            return db.execute(sql.replace("?", "%s"), params).fetchall()

    def pids(self) -> dict[str, int]:
        return {name: started.proc.pid for name, started in self.processes.items()}

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM to every process (the bridges finish their in-flight messages, run_jobs stops its
        cluster), then SIGKILL to whatever is left in their groups, forked cluster children included."""
        running = [s for s in self.processes.values() if s.proc.poll() is None]
        for started in running:
            started.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for started in running:
            try:
                started.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for started in self.processes.values():
            _signal_group(started.proc.pid, signal.SIGKILL)
            started.proc.wait(5)
        codes = [s.proc.returncode for s in self.processes.values()]
        return next((code for code in codes if code), 0) if codes else None


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


class ServerCpu:
    """CPU of the servers the split node uses, which its own processes' figures leave out.

    PostgreSQL: the backends serving this database, sampled every `interval_s` in a thread (a
    backend that existed at `start()` counts from then, a later one from its birth, each to the
    last sample that saw it; one that lived less than an interval is missed, `backends seen`
    says how many were counted). Redis: the whole server
    (shared with whoever else uses it).
    """

    def __init__(self, database_url: str, redis_url: str, *, interval_s: float = 0.5) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.interval_s = interval_s
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis_pid = 0
        self._redis_start = 0.0
        self._postmaster_pid = 0
        self._server_start = 0.0

    def start(self) -> None:
        import redis

        self._redis_pid = int(redis.Redis.from_url(self.redis_url).info("server")["process_id"])
        self._redis_start = process_cpu_s(self._redis_pid)
        import psycopg

        with psycopg.connect(self.database_url) as db:
            (backend,) = db.execute("SELECT pg_backend_pid()").fetchone()
            self._postmaster_pid = parent_pid(backend)  # while the backend lives
        self._server_start = server_cpu_s(self._postmaster_pid)
        self._thread = threading.Thread(target=self._sample, name="server-cpu", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as db:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            baseline = True
            while True:
                for (pid,) in db.execute(query).fetchall():
                    used = process_cpu_s(pid)
                    self.first.setdefault(pid, used if baseline else 0.0)
                    self.last[pid] = max(self.last.get(pid, 0.0), used)
                baseline = False
                if self._stop.wait(self.interval_s):
                    return

    def stop(self) -> dict[str, float]:
        """Seconds of CPU since `start()`: this database's backends, the whole PostgreSQL server
        (every database: other users' work included) and the whole Redis server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        postgres = sum(self.last[pid] - self.first[pid] for pid in self.last)
        return {
            "postgres backends": postgres,
            "postgres server (all databases)": server_cpu_s(self._postmaster_pid) - self._server_start,
            "redis-server": process_cpu_s(self._redis_pid) - self._redis_start,
        }

    @property
    def backends_seen(self) -> int:
        return len(self.last)


def process_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def server_cpu_s(postmaster_pid: int) -> float:
    """The postmaster's CPU with its reaped children's (ended backends) plus its live children's."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{postmaster_pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_pid(int(entry.name)) == postmaster_pid:
                    total += process_cpu_s(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return total


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    """Stop the benchmarks' py-spy recorders (SIGINT: each writes its profile) and wait for them."""
    for proc in profilers:
        proc.send_signal(signal.SIGINT)
    for proc in profilers:
        proc.wait(30)
