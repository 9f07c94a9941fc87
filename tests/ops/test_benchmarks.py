"""`make bench` must work from a fresh clone (issue 19, part 6): every benchmark script starts (its
imports still resolve after a rename), and the protocol benchmark, the one fast enough to run
here, produces figures the summary turns into rows. Figures themselves are never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=240)


def test_every_benchmark_is_listed():
    assert SCRIPTS == [
        "bench_bridge.py",
        "bench_drain.py",
        "bench_instr.py",
        "bench_lightning.py",
        "bench_protocol.py",
        "bench_relay_compression.py",
        "bench_slow_lnurl.py",
        "bench_trades.py",
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_starts_from_any_directory(script, tmp_path):
    done = _run(str(ROOT / "benchmarks" / script), "--help", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage:")


def test_protocol_figures_reach_the_summary(tmp_path):
    done = _run(
        "benchmarks/bench_protocol.py", "--events", "5", "--rounds", "1", "--json", str(tmp_path / "protocol.json")
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "protocol.json").read_text())
    assert sorted(figures) == ["v1 unwrap", "v1 wrap", "v2 unwrap", "v2 wrap"]

    summary = _run("benchmarks/summary.py", str(tmp_path))
    protocol_rows = [line for line in summary.stdout.splitlines() if line.startswith("| protocol |")]
    assert len(protocol_rows) == 6
    assert not any("no result" in row for row in protocol_rows)
    assert summary.returncode == 1  # the other three benchmarks did not run: their rows say so


def test_the_compression_benchmark_negotiates_what_each_row_says():
    """Both rows, and deflate really negotiated in one of them: fewer bytes on the wire."""
    done = _run("benchmarks/bench_relay_compression.py", "--frames", "20", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1:]
        for line in done.stdout.splitlines()
        if line.startswith(("| deflate |", "| none |"))
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert sorted(rows) == ["deflate", "none"]
    sent = {label: int(cells[1]) for label, cells in rows.items()}
    assert sent["deflate"] < sent["none"]


def test_the_optional_soak_joins_the_summary_only_when_it_ran(tmp_path):
    without = _run("benchmarks/summary.py", str(tmp_path))
    assert [line for line in without.stdout.splitlines() if line.startswith("| soak |")] == []

    soak = {
        "offered_per_s": 300,
        "duration_s": 600,
        "replies/s": 299.5,
        "missing": 0,
        "soak rss growth %": 6.25,
        "soak rss start/peak/end MB": "120.0 / 128.0 / 127.5",
    }
    (tmp_path / "soak.json").write_text(json.dumps(soak))
    summary = _run("benchmarks/summary.py", str(tmp_path))
    assert [line for line in summary.stdout.splitlines() if line.startswith("| soak |")] == [
        "| soak | bridge RSS growth after the warm-up minute (300/s for 600 s, 120.0 / 128.0 / 127.5 MB) "
        "| 6.2 % | < 5 % | **missed** |",
        "| soak | replies/s during the soak | 299.5 | ≥ 300 (≈ offered) | met |",
        "| soak | replies missing | 0 | 0 | met |",
    ]
