"""Running the deployment files' commands here: as subprocesses, with the environment they set."""

from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.ops.deploy_files import CODE_DIR, VAR_DIR
from tests.relays.net import REPO_ROOT

START_DEADLINE_S = 90.0


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def localize(argv: list[str], *, var_dir: Path, ports: dict[str, int], tmp_dir: Path | None = None) -> list[str]:
    """The image's / units' paths → this checkout and `var_dir`; fixed ports → `ports`."""
    out = []
    for token in argv:
        if tmp_dir is not None and token.startswith("/tmp/"):  # the container's own /tmp
            token = str(tmp_dir / token.removeprefix("/tmp/"))
        else:
            token = token.replace(VAR_DIR, str(var_dir)).replace(CODE_DIR, str(REPO_ROOT))
        for fixed, free in ports.items():
            if token == fixed:
                token = str(free)
            elif token.endswith(f":{fixed}"):
                token = token.removesuffix(fixed) + str(free)
            else:
                token = token.replace(f":{fixed}/", f":{free}/")
        if token in ("python", "python3", "daphne"):  # the image's PATH starts with the venv
            token = str(REPO_ROOT / ".venv" / "bin" / token)
        out.append(token)
    return out


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports (simnet's nodes take base, base + 1, ...)."""
    for _ in range(200):
        base = random.randint(20_000, 60_000)  # noqa: S311 - choosing a port
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def base_environment() -> dict[str, str]:
    """What a service manager gives a process: a PATH, a locale, nothing of this test run."""
    return {
        "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/tmp"),
        # Not the checkout's own .env: only what the unit / compose file sets.
        "MOSTRO_ENV_FILE": "/nonexistent/.env",
    }


@dataclass
class Launched:
    name: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str, deadline_s: float = START_DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never printed {text!r}:\n{self.output[-3000:]}")
            time.sleep(0.2)


def launch(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Launched:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    return Launched(name, proc, log_path)


def run_to_end(name: str, argv: list[str], env: dict[str, str], log_dir: Path, timeout_s: float = 120) -> str:
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    (log_dir / f"{name}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"{name}: {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def stop_all(processes: list[Launched], timeout_s: float = 40.0) -> dict[str, int | None]:
    """SIGTERM each (as systemd / compose stop do), then SIGKILL the groups left behind."""
    for launched in processes:
        if launched.proc.poll() is None:
            launched.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    codes = {}
    for launched in processes:
        try:
            codes[launched.name] = launched.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            codes[launched.name] = None
        try:
            os.killpg(launched.proc.pid, signal.SIGKILL)  # forked job-cluster children, if any
        except ProcessLookupError:
            pass
        if codes[launched.name] is None:
            launched.proc.wait(5)
    return codes


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test processes
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    except OSError as exc:
        return 0, str(exc)
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def wait_ready(url: str, deadline_s: float = START_DEADLINE_S) -> dict:
    """Poll /readyz until 200; the last body is in the assertion message otherwise."""
    deadline = time.monotonic() + deadline_s
    while True:
        status, body = get_json(url)
        if status == 200:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} still {status}: {body}")
        time.sleep(1.0)
