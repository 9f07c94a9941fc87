"""Loaded (by PYTHONPATH) only into the node that `benchmarks/bench_instr.py` runs under callgrind.

SIGUSR1 turns callgrind's instrumentation on and zeroes its counters; SIGUSR2 dumps them. The
benchmark signals the job cluster's forked children this way: callgrind_control cannot reach
them (valgrind's gdbserver is not set up again after a fork), and Python signal handlers survive
the fork. mostrod itself is driven by callgrind_control. The client requests come from a tiny C library built by the
benchmark from valgrind's callgrind.h ($BENCH_CALLGRIND_LIB).
"""

import ctypes
import os
import signal

_lib = ctypes.CDLL(os.environ["BENCH_CALLGRIND_LIB"])


def _start(signum, frame):
    _lib.bench_callgrind_start()


def _dump(signum, frame):
    _lib.bench_callgrind_dump()


signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _dump)
