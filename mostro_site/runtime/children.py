"""Child processes of the local node (simulated Lightning, local relay, the node itself).

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order. PR_SET_PDEATHSIG makes a child get
SIGTERM if the supervisor dies without cleaning up (Linux).
"""

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the explicit stop in the supervisor still applies


class ChildFailed(RuntimeError):
    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path | None = None
    ready_line: str = ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def spawn(name: str, command: list[str], *, env: dict, cwd: Path, log_dir: Path | None, stdin=None) -> Child:
    log_path = None
    output = None
    if log_dir is not None:
        log_path = log_dir / f"{name}.log"
        output = log_path.open("ab")
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # runs between fork and exec; the supervisor has no threads yet
    )
    if output is not None:
        output.close()  # the child holds its own copy
    return Child(name, process, log_path)


def wait_ready(child: Child, *, prefix: str = "READY", timeout: float = 60.0, offset: int = 0) -> str:
    """Wait for a log line starting with `prefix` written after `offset`; return it."""
    if child.log_path is None:
        raise ValueError(f"{child.name} has no log file to wait on")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in _new_lines(child.log_path, offset):
            if line.startswith(prefix):
                child.ready_line = line
                return line
        if not child.alive:
            raise ChildFailed(f"{child.name} exited with code {child.process.returncode}", child.log_path)
        time.sleep(0.05)
    child.stop()
    raise ChildFailed(f"{child.name} did not start within {timeout:.0f} s", child.log_path)


def log_offset(log_dir: Path, name: str) -> int:
    path = log_dir / f"{name}.log"
    return path.stat().st_size if path.exists() else 0


def _new_lines(path: Path, offset: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(offset)
        return [line.decode(errors="replace").strip() for line in fh.read().splitlines()]


def project_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}
