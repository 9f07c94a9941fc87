"""pytest plugin for scripts/mutation.py: many mutants of one module in one pytest process.

Starting pytest (Django, the test database) costs seconds, about as much as a module's test
selection; on a shared machine that made a full run take hours. This plugin pays it once:
after collection it runs the selection unmutated, then for each mutant

* compiles the mutated module and swaps its functions' code objects into the live functions
  (every `from x import f` elsewhere holds the same function object, so all callers see the
  mutant), and rebinds changed module-level values (constants, status sets, the transition
  table) in every project module that imported the same object;
* runs the selection until the first failure, then restores everything.

A mutant whose change cannot be applied that way (a class decorator's argument, say) is
reported as `fallback` and run by the driver in a fresh process. A mutant that hangs trips a
watchdog that records `timeout` and ends the process; the driver starts a new one for the rest.

Activated only when MUTATION_SPEC names a spec file (see `mutation.py`).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import os
import sys
import threading
import time
import types

import pytest
from _pytest.runner import runtestprotocol

_PROJECT = ("orders", "devfee", "disputes", "lightning", "nostrbridge", "mostro_site", "tests")
_MISSING = object()


def _spec() -> dict | None:
    path = os.environ.get("MUTATION_SPEC")
    if not path:
        return None
    with open(path) as handle:
        return json.load(handle)


def _record(entry: dict) -> None:
    with open(os.environ["MUTATION_RESULTS"], "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def _done_keys() -> set[str]:
    path = os.environ["MUTATION_RESULTS"]
    if not os.path.exists(path):
        return set()
    with open(path) as handle:
        return {json.loads(line)["key"] for line in handle if line.strip()}


def _run_items(session: pytest.Session, items: list[pytest.Item], first: pytest.Item) -> tuple[bool, str]:
    """Run the items in order until one fails; (all passed, first failing node id).

    Fixtures are torn down as if `first` (the session's first item) came next, so every
    pass starts from the same state."""
    session._setupstate.teardown_exact(items[0])  # keep only what this run's first item shares
    for i, item in enumerate(items):
        nextitem = items[i + 1] if i + 1 < len(items) else first
        item._initrequest()
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if any(report.failed for report in reports):
            session._setupstate.teardown_exact(first)
            return False, item.nodeid
    return True, ""


def _baseline_with_coverage(session: pytest.Session, path: str) -> tuple[bool, str, dict[str, set[str]]]:
    """Run every item once, unmutated, recording which of the module's top-level functions
    (and classes) each one executed: a mutant inside a function runs only the tests that
    reach it, since no other test can see it."""
    items = session.items
    reached: dict[str, set[str]] = {}
    current: set[str] = set()

    def tracer(frame, event, arg):
        # Called once per new frame; returning None keeps line tracing off (cheap).
        if frame.f_code.co_filename == path:
            current.add(frame.f_code.co_qualname.split(".", 1)[0])

    for i, item in enumerate(items):
        current = set()
        sys.settrace(tracer)
        threading.settrace(tracer)
        try:
            passed, failing = _run_items(session, [item], items[i + 1] if i + 1 < len(items) else items[0])
        finally:
            sys.settrace(None)
            threading.settrace(None)
        if not passed:
            return False, failing, reached
        reached[item.nodeid] = current
    return True, "", reached


def _selection(items: list[pytest.Item], reached: dict[str, set[str]], key: str) -> list[pytest.Item]:
    owner = key.split(":", 1)[0].split(".", 1)[0]
    if owner == "<module>":
        return items  # a module-level value can be read by anything
    return [item for item in items if owner in reached[item.nodeid]]


# --- applying a mutant in process --------------------------------------------------------------


def _fingerprint(code: types.CodeType) -> tuple:
    """The code's behaviour, line numbers left out."""
    consts = tuple(
        _fingerprint(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c)) for c in code.co_consts
    )
    return (code.co_code, code.co_names, code.co_varnames, consts)


def _own_function(value: object, path: str) -> types.FunctionType | None:
    func = inspect.unwrap(value) if callable(value) else value
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    if isinstance(func, types.FunctionType) and func.__code__.co_filename == path:
        return func
    return None


def _same(old: object, new: object) -> bool:
    try:
        return type(old) is type(new) and bool(old == new)
    except Exception:  # noqa: BLE001 - an odd __eq__ means "cannot tell": treat as unchanged
        return True


class Applied:
    """One mutant applied to the live module; `undo()` restores every change."""

    def __init__(self) -> None:
        self.undo_steps: list = []
        self.changed = False
        # A method whose code cannot be swapped (its closure differs, e.g. a `super()` call
        # removed drops the `__class__` cell): run in a fresh process instead of unmutated.
        self.needs_process = False

    def patch_function(self, old: types.FunctionType, new: types.FunctionType, rebind) -> None:
        if _fingerprint(old.__code__) == _fingerprint(new.__code__) and repr(old.__defaults__) == repr(
            new.__defaults__
        ):
            return
        self.changed = True
        saved = (old.__code__, old.__defaults__, old.__kwdefaults__)
        try:
            old.__code__ = new.__code__
        except ValueError:  # a different closure: replace the function object itself
            rebind()
            return
        old.__defaults__, old.__kwdefaults__ = new.__defaults__, new.__kwdefaults__
        self.undo_steps.append(lambda: _restore(old, saved))

    def rebind(self, name: str, old: object, new: object) -> None:
        """Point every project module's `name` that is the old object at the new one."""
        self.changed = True
        for module in list(sys.modules.values()):
            if not getattr(module, "__name__", "").startswith(_PROJECT):
                continue
            if module.__dict__.get(name, _MISSING) is old:
                setattr(module, name, new)
                self.undo_steps.append(lambda m=module: setattr(m, name, old))

    def undo(self) -> None:
        for step in reversed(self.undo_steps):
            step()
        self.undo_steps.clear()


def _restore(func: types.FunctionType, saved: tuple) -> None:
    func.__code__, func.__defaults__, func.__kwdefaults__ = saved


def apply_mutant(module_name: str, source: str) -> Applied:
    module = importlib.import_module(module_name)
    path = module.__file__
    namespace = {
        "__name__": module.__name__,
        "__file__": path,
        "__package__": module.__package__,
        "__spec__": module.__spec__,
        "__builtins__": builtins,
    }
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - the mutant is our own AST edit
    applied = Applied()
    for name, new in namespace.items():
        if name.startswith("__"):
            continue
        old = module.__dict__.get(name, _MISSING)
        if old is _MISSING:
            continue
        new_func, old_func = _own_function(new, path), _own_function(old, path)
        if new_func is not None and old_func is not None:
            steps = len(applied.undo_steps)
            applied.patch_function(old_func, new_func, lambda n=name, o=old, v=new: applied.rebind(n, o, v))
            cache_clear = getattr(old, "cache_clear", None)
            if len(applied.undo_steps) > steps and callable(cache_clear):
                # A functools.cache'd function: what the unmutated code cached earlier in this
                # process would answer instead of the mutant (seen: payout's `_orm_broker`).
                cache_clear()
                applied.undo_steps.append(cache_clear)
        elif inspect.isclass(new) and inspect.isclass(old) and new.__module__ == module.__name__:
            for attr, value in vars(new).items():
                new_method, old_method = _own_function(value, path), _own_function(vars(old).get(attr), path)
                if new_method is not None and old_method is not None:
                    applied.patch_function(old_method, new_method, lambda: setattr(applied, "needs_process", True))
        elif not (inspect.isclass(new) or inspect.ismodule(new) or callable(new)) and not _same(old, new):
            applied.rebind(name, old, new)
    return applied


# --- the loop ----------------------------------------------------------------------------------


class _Watchdog:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    def start(self, key: str, started: float) -> None:
        def expire() -> None:
            _record({"key": key, "outcome": "timeout", "seconds": round(time.monotonic() - started, 1)})
            os._exit(3)

        self.timer = threading.Timer(self.seconds, expire)
        self.timer.daemon = True
        self.timer.start()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    spec = _spec()
    if spec is None:
        return None
    items = session.items
    started = time.monotonic()
    module_path = importlib.import_module(spec["module"]).__file__
    passed, failing, reached = _baseline_with_coverage(session, module_path)
    if not passed:
        _record({"key": "<baseline>", "outcome": "failed", "test": failing})
        return True
    baseline = time.monotonic() - started
    watchdog = _Watchdog(max(3 * baseline, baseline + 30))
    done = _done_keys()
    for mutant in spec["mutants"]:
        if mutant["key"] in done:
            continue
        began = time.monotonic()
        try:
            applied = apply_mutant(spec["module"], mutant["source"])
        except Exception as exc:  # noqa: BLE001 - a mutant that breaks at import time is killed
            _record({"key": mutant["key"], "outcome": "killed", "test": f"import: {exc!r}"[:200], "seconds": 0})
            continue
        if not applied.changed or applied.needs_process:
            applied.undo()
            _record({"key": mutant["key"], "outcome": "fallback", "seconds": 0})
            continue
        selected = _selection(items, reached, mutant["key"])
        watchdog.start(mutant["key"], began)
        try:
            passed, failing = _run_items(session, selected, items[0]) if selected else (True, "")
        finally:
            watchdog.stop()
            applied.undo()
        outcome = ("survived" if selected else "uncovered") if passed else "killed"
        _record(
            {"key": mutant["key"], "outcome": outcome, "test": failing, "seconds": round(time.monotonic() - began, 2)}
        )
    return True
