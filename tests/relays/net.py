"""Ports and process plumbing shared by the test relays."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """Read one stdout line from a child without hanging past timeout_s ("" on EOF/timeout)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return proc.stdout.readline()


def terminate(proc: subprocess.Popen[str] | None, *, hard: bool, timeout_s: float = 5.0) -> None:
    """SIGKILL (hard, like a crash) or SIGTERM the child's process group, then reap it."""
    if proc is None or proc.poll() is not None:
        return
    sig = signal.SIGKILL if hard else signal.SIGTERM
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def wait_port_free(host: str, port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_accepts(host, port) and time.monotonic() < deadline:
        time.sleep(0.02)


def die_with_parent() -> None:
    """Call inside a relay child started with stdin=PIPE: when the test process dies, the pipe
    hits EOF and the child kills itself, so an aborted test run never leaves relays behind."""

    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
