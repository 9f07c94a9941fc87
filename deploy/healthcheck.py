"""Probe a Mostro process without loading Django (container HEALTHCHECK, systemd ExecStartPost).

    python deploy/healthcheck.py --url http://127.0.0.1:8000/healthz     # the web answers 200
    python deploy/healthcheck.py --file /tmp/mostro-alive --max-age 60   # a bridge/watcher/jobs heartbeat
    python deploy/healthcheck.py --tcp 127.0.0.1:7000                    # a port accepts connections
    ... --wait 120                                                       # retry until it passes (start-up)

The heartbeat file is MOSTRO_HEARTBEAT_FILE, touched by the process each time it has written its
metrics to the database (MOSTRO_METRICS_FLUSH_SECONDS): alive, and reaching the database.
Exit status 0 when the probe passes, 1 with one line saying why when it does not.
"""

import argparse
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def probe_url(url: str, timeout_s: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - operator-given URL
            return "" if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, urllib.error.URLError) as exc:
        return f"{url} unreachable: {exc}"


def probe_file(path: str, max_age_s: float) -> str:
    try:
        age = time.time() - Path(path).stat().st_mtime
    except OSError:
        return f"{path} does not exist yet"
    return "" if age <= max_age_s else f"{path} is {age:.0f} s old (limit {max_age_s:.0f} s)"


def probe_tcp(address: str, timeout_s: float) -> str:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"{address}: {exc}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="an HTTP endpoint that must answer 200 (/healthz, /readyz)")
    target.add_argument("--file", help="a heartbeat file that must be recent")
    target.add_argument("--tcp", help="host:port that must accept a connection (the demo's relay, simnet)")
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (with --file)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP request")
    parser.add_argument("--wait", type=float, default=0.0, help="retry for up to this many seconds")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        if args.url:
            problem = probe_url(args.url, args.timeout)
        elif args.tcp:
            problem = probe_tcp(args.tcp, args.timeout)
        else:
            problem = probe_file(args.file, args.max_age)
        if not problem:
            return 0
        if time.monotonic() >= deadline:
            sys.stderr.write(problem + "\n")
            return 1
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
