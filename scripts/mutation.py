"""Mutation testing of the money path (`make mutation`; results in docs/TESTING.md).

Each mutant is one small AST change in one module: a comparison or boolean operator swapped,
a condition dropped or forced, a keyword argument dropped from a call (a filter, an update, a
guard), a dict entry dropped (a field of an update), a call statement removed, a constant or an
arithmetic operator changed. Every mutant runs the module's own selection of fast tests
(`TARGETS`) in a private copy of the repository, so workers never touch the working tree and
never share a database. A mutant is killed when that selection fails or times out.

    scripts/mutation.py                          # every module, one worker
    scripts/mutation.py --modules payout,devfee  # short names or paths
    scripts/mutation.py --workers 2 --only _claim --list
    scripts/mutation.py --stale                  # after a merge: survivors and mutants never run

Results are merged into var/mutation/results.json (a re-run of one module replaces only that
module's entries); the report (var/mutation/report.md, or docs/TESTING.md with --update-doc)
divides killed mutants by the non-equivalent ones. Mutants judged equivalent are listed, each
with its reason, in scripts/mutation_equivalents.toml, keyed by a description that does not
contain line numbers, so unrelated edits keep the list valid.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "var" / "mutation" / "results.json"
REPORT = ROOT / "var" / "mutation" / "report.md"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"
DOC = ROOT / "docs" / "TESTING.md"
DOC_BEGIN, DOC_END = "<!-- mutation:begin -->", "<!-- mutation:end -->"

GUARDS = "tests/guards"
DECIDE_FIRST = f"{GUARDS}/test_decision_first.py"  # the escrow's decide-before-LND interleavings
BONDS = ("tests/orders/bonds", "tests/disputes/test_bond_slash.py", "tests/disputes/test_range_bond_slash.py")


@dataclass(frozen=True)
class Target:
    path: str
    selection: tuple[str, ...]
    # Only these top-level functions ("<module>" for module-level values) when the module
    # holds more than the money path (a selectors module).
    functions: tuple[str, ...] | None = None

    @property
    def tests(self) -> tuple[str, ...]:
        """The selection's files that exist (a module's guard tests may not be written yet)."""
        skip = GUARDS if os.environ.get("MUTATION_WITHOUT_GUARDS") else "\0"
        return tuple(t for t in self.selection if (ROOT / t.split("::")[0]).exists() and not t.startswith(skip))


# Per module: the fast tests that exercise it (no relay, no simnet); the guard tests first.
TARGETS: dict[str, Target] = {
    "payout": Target(
        "orders/services/payout.py",
        (
            f"{GUARDS}/test_payout_guards.py",
            f"{GUARDS}/test_payout_escrow_guards.py",
            f"{GUARDS}/test_payout_schedule_guards.py",
            "tests/orders/services/test_payout.py",
            "tests/orders/services/test_payout_lnurl_retry.py",
            "tests/orders/services/test_payout_queue.py",
            "tests/orders/services/test_payout_facts.py",
            "tests/orders/services/test_races.py",
        ),
    ),
    "payout-sweeps": Target(
        "orders/services/payout_sweeps.py",
        (
            f"{GUARDS}/test_payout_guards.py",
            f"{GUARDS}/test_payout_escrow_guards.py",
            "tests/orders/services/test_payout.py",
            "tests/orders/services/test_payout_lnurl_retry.py",
            "tests/orders/test_jobs.py",
        ),
    ),
    "escrow": Target(
        "orders/services/escrow.py",
        (
            f"{GUARDS}/test_escrow_guards.py",
            "tests/orders/services/test_escrow.py",
            "tests/orders/services/test_accepted_reads.py",
            "tests/orders/services/test_timeouts.py",
            "tests/orders/handlers/test_take_sell.py",
            "tests/orders/handlers/test_take_buy.py",
            "tests/orders/handlers/test_vector_flows.py",
        ),
    ),
    "timeouts": Target(
        "orders/services/timeouts.py",
        (
            f"{GUARDS}/test_timeout_guards.py",
            DECIDE_FIRST,
            "tests/orders/services/test_timeouts.py",
            "tests/orders/test_jobs.py",
            "tests/orders/bonds/test_timeout_slash.py",
        ),
    ),
    "guardian": Target(
        "orders/services/guardian.py",
        (f"{GUARDS}/test_guardian_guards.py", DECIDE_FIRST, "tests/orders/services/test_guardian.py"),
    ),
    "guardian-dispute": Target(
        "disputes/services/escrow_deadline.py",
        (f"{GUARDS}/test_guardian_guards.py", "tests/orders/services/test_guardian.py"),
    ),
    "release": Target(
        "orders/services/release.py",
        (
            f"{GUARDS}/test_release_cancel_guards.py",
            DECIDE_FIRST,
            "tests/orders/handlers/test_release.py",
            "tests/orders/handlers/test_fiat_sent.py",
            "tests/orders/services/test_races.py",
            "tests/orders/services/test_payout_facts.py",
            f"{GUARDS}/test_settle_wake.py",
        ),
    ),
    "cancel": Target(
        "orders/services/cancel.py",
        (
            f"{GUARDS}/test_release_cancel_guards.py",
            DECIDE_FIRST,
            "tests/orders/handlers/test_cancel.py",
            "tests/orders/services/test_races.py",
            "tests/orders/services/test_timeouts.py",
            "tests/orders/bonds/test_maker_bond.py",
            "tests/orders/bonds/test_taker_bond.py",
        ),
    ),
    "transitions": Target(
        "orders/transitions.py",
        (f"{GUARDS}/test_transition_guards.py", "tests/foundation/test_transitions.py", *BONDS),
    ),
    "status": Target(
        "orders/status.py",
        (f"{GUARDS}/test_state_machine.py", "tests/foundation/test_transitions.py"),
    ),
    "amounts": Target("orders/services/amounts.py", ("tests/orders/test_amounts.py",)),
    "fees": Target("lightning/fees.py", ("tests/lightning/test_fees.py", f"{GUARDS}/test_payout_guards.py")),
    "devfee": Target(
        "devfee/services.py",
        (f"{GUARDS}/test_devfee_guards.py", "tests/devfee/test_services.py", "tests/devfee/test_races.py"),
    ),
    "devfee-billing": Target(
        "orders/selectors.py",
        (f"{GUARDS}/test_devfee_guards.py", "tests/devfee/test_services.py", "tests/operator/test_maintenance.py"),
        # The drain counters say when no sat is in flight (docs/PROTOCOL.md §Maintenance).
        functions=("dev_fee_billable_orders", "drain_counters", "<module>"),
    ),
    "dispute-resolve": Target(
        "disputes/services/resolve.py",
        (
            f"{GUARDS}/test_dispute_guards.py",
            f"{GUARDS}/test_release_cancel_guards.py",
            DECIDE_FIRST,
            "tests/disputes/test_nostr_resolve.py",
            "tests/disputes/test_bond_slash.py",
            "tests/disputes/test_admin_cancel_pretrade.py",
            "tests/disputes/test_party_solver.py",
            "tests/disputes/test_auto_ban.py",
            f"{GUARDS}/test_settle_wake.py",
        ),
    ),
    "dispute-take": Target(
        "disputes/services/take.py",
        (
            f"{GUARDS}/test_dispute_guards.py",
            "tests/disputes/test_nostr_take.py",
            "tests/disputes/test_party_solver.py",
        ),
    ),
    "dispute-transitions": Target(
        "disputes/transitions.py",
        (
            f"{GUARDS}/test_dispute_guards.py",
            f"{GUARDS}/test_guardian_guards.py",
            "tests/disputes/test_transitions.py",
            "tests/disputes/test_nostr_take.py",
        ),
    ),
    "escrow-refund": Target(
        "orders/services/escrow_refund.py",
        (
            f"{GUARDS}/test_escrow_refund_guards.py",
            DECIDE_FIRST,
            f"{GUARDS}/test_timeout_guards.py",
            f"{GUARDS}/test_release_cancel_guards.py",
            "tests/orders/services/test_timeouts.py",
            "tests/orders/services/test_guardian.py",
            "tests/orders/handlers/test_cancel.py",
        ),
    ),
    "escrow-reconcile": Target(
        "orders/services/escrow_reconcile.py",
        (
            f"{GUARDS}/test_escrow_reconcile_guards.py",
            DECIDE_FIRST,
            f"{GUARDS}/test_escrow_guards.py",
            f"{GUARDS}/test_payout_guards.py",
            "tests/orders/services/test_escrow.py",
            "tests/orders/handlers/test_release.py",
            f"{GUARDS}/test_settle_wake.py",  # escrow_settle_after: decide, settle, then wake
        ),
    ),
    "bond-transitions": Target("orders/bonds/transitions.py", BONDS),
    "bond-slash": Target("orders/bonds/slash.py", BONDS),
    "bond-payout": Target("orders/bonds/payout.py", BONDS),
    "bond-release": Target("orders/bonds/release.py", BONDS),
    "bond-lock": Target("orders/bonds/lock.py", BONDS),
    "bond-htlc": Target("orders/bonds/htlc.py", BONDS),
    "bond-jobs": Target("orders/bonds/jobs.py", BONDS),
}

# --- mutant generation -------------------------------------------------------------------------

_CMP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_BIN_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
}
_QUIET_CALLS = {"logger", "logging", "warnings"}  # log lines: dropping or changing them moves no money
# `atomic(durable=True)` only asserts that no outer transaction is open (and Django's test
# cases switch that check off): not a behaviour a test of the service can observe.
_ASSERTION_KWARGS = {"durable"}


@dataclass
class Mutant:
    module: str  # short name
    path: str
    key: str  # stable: qualname + description (+ #n), no line numbers
    line: int
    description: str
    source: str = field(repr=False)  # the whole mutated module


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and parent is not None
        and getattr(parent, "body", None)
        and parent.body[0] is node
    )


def _is_quiet_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in _QUIET_CALLS


def _short(node: ast.AST, limit: int = 90) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Collector:
    """Walks one module and yields (node, replacement, description, qualname)."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.members = _enum_members(tree)
        self.found: list[tuple[ast.AST, str, str, str]] = []  # node, replacement source, description, qualname

    def run(self) -> list[tuple[ast.AST, str, str, str]]:
        self._visit(self.tree, None, "<module>")
        return self.found

    def _add(self, node: ast.AST, replacement: ast.AST | str, description: str, qualname: str) -> None:
        if isinstance(replacement, ast.AST):
            ast.fix_missing_locations(replacement)
            replacement = f"({ast.unparse(replacement)})"
        self.found.append((node, replacement, description, qualname))

    def _visit(self, node: ast.AST, parent: ast.AST | None, qualname: str) -> None:
        if _is_docstring(node, parent) or _is_quiet_call(node) or isinstance(node, ast.JoinedStr):
            return
        if isinstance(node, ast.keyword) and node.arg in _ASSERTION_KWARGS:
            return
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple):
            node.slice.is_type_arguments = True  # `tuple[str, datetime]`: a type, not a value
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = node.name if qualname == "<module>" else f"{qualname}.{node.name}"
        self._mutate(node, qualname)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue  # type hints move nothing at run time
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    self._visit(child, node, qualname)

    def _mutate(self, node: ast.AST, q: str) -> None:
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new in _CMP_SWAPS.get(type(op), ()):
                    mutated = copy.deepcopy(node)
                    mutated.ops[i] = new()
                    self._add(node, mutated, f"`{_short(node)}` → `{_short(mutated)}`", q)
        elif isinstance(node, ast.BoolOp):
            other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            swapped = ast.BoolOp(op=other, values=copy.deepcopy(node.values))
            self._add(node, swapped, f"`{_short(node)}` → `{_short(swapped)}`", q)
            for i, value in enumerate(node.values):
                rest = [copy.deepcopy(v) for j, v in enumerate(node.values) if j != i]
                kept = rest[0] if len(rest) == 1 else ast.BoolOp(op=copy.deepcopy(node.op), values=rest)
                self._add(node, kept, f"drop `{_short(value)}` from `{_short(node)}`", q)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._add(node, copy.deepcopy(node.operand), f"`{_short(node)}` → `{_short(node.operand)}`", q)
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            for forced in (True, False):
                self._add(node.test, ast.Constant(forced), f"condition `{_short(node.test)}` → {forced}", q)
        elif isinstance(node, ast.Call):
            for i, keyword in enumerate(node.keywords):
                if keyword.arg in _ASSERTION_KWARGS:
                    continue
                mutated = copy.deepcopy(node)
                del mutated.keywords[i]
                label = f"**{_short(keyword.value, 50)}" if keyword.arg is None else keyword.arg
                self._add(node, mutated, f"drop `{label}=` from `{_short(node.func)}(…)`", q)
        elif isinstance(node, ast.Dict):
            for i, key in enumerate(node.keys):
                if key is None:
                    continue
                mutated = copy.deepcopy(node)
                del mutated.keys[i]
                del mutated.values[i]
                self._add(node, mutated, f"drop entry `{_short(key)}` from a dict", q)
        elif isinstance(node, (ast.Set, ast.List, ast.Tuple)) and not isinstance(getattr(node, "ctx", None), ast.Store):
            self._mutate_collection(node, q)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAPS:
            mutated = copy.deepcopy(node)
            mutated.op = _BIN_SWAPS[type(node.op)]()
            self._add(node, mutated, f"`{_short(node)}` → `{_short(mutated)}`", q)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            new = (not value) if isinstance(value, bool) else value + 1
            self._add(node, ast.Constant(new), f"constant `{value!r}` → `{new!r}`", q)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_quiet_call(node.value):
            self._add(node, "pass", f"remove `{_short(node.value)}`", q)

    def _mutate_collection(self, node: ast.Set | ast.List | ast.Tuple, q: str) -> None:
        """Drop each element; a set of `Enum.MEMBER`s also gains each member it lacks (a new edge)."""
        if getattr(node, "is_type_arguments", False):
            return
        for i, element in enumerate(node.elts):
            if isinstance(element, ast.Starred) or (isinstance(node, ast.Set) and len(node.elts) == 1):
                continue  # `{}` would be a dict
            mutated = copy.deepcopy(node)
            del mutated.elts[i]
            self._add(node, mutated, f"drop `{_short(element)}` from `{_short(node)}`", q)
        bases = {ast.unparse(e.value) for e in node.elts if isinstance(e, ast.Attribute)}
        if not isinstance(node, ast.Set) or len(bases) != 1 or not all(isinstance(e, ast.Attribute) for e in node.elts):
            return
        (base,) = bases
        present = {e.attr for e in node.elts}
        for member in sorted(self.members.get(base, set()) - present):
            mutated = copy.deepcopy(node)
            mutated.elts.append(ast.Attribute(value=ast.parse(base, mode="eval").body, attr=member, ctx=ast.Load()))
            self._add(node, mutated, f"add `{base}.{member}` to `{_short(node)}`", q)


def _enum_members(tree: ast.Module) -> dict[str, set[str]]:
    """`Base.MEMBER` attribute names used anywhere in the module, by base (`S`, `OrderStatus`)."""
    members: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.isupper():
            members.setdefault(node.value.id, set()).add(node.attr)
    return members


def _splice(source: bytes, node: ast.AST, replacement: str) -> bytes:
    """Replace `node`'s exact span (ast offsets are UTF-8 byte offsets) with `replacement`."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    begin = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    return source[:begin] + replacement.encode() + source[end:]


def generate(module: str) -> list[Mutant]:
    target = TARGETS[module]
    raw = (ROOT / target.path).read_bytes()
    tree = ast.parse(raw)
    mutants: list[Mutant] = []
    seen_keys: dict[str, int] = {}
    seen_sources: set[bytes] = {raw}
    for node, replacement, description, qualname in _Collector(tree).run():
        if target.functions is not None and qualname.split(".", 1)[0] not in target.functions:
            continue
        mutated = _splice(raw, node, replacement)
        try:
            compile(mutated, target.path, "exec")
        except SyntaxError:
            continue
        if mutated in seen_sources:
            continue  # two operators producing the same code: one mutant
        seen_sources.add(mutated)
        key = f"{qualname}: {description}"
        seen_keys[key] = seen_keys.get(key, 0) + 1
        if seen_keys[key] > 1:
            key = f"{key} #{seen_keys[key]}"
        mutants.append(Mutant(module, target.path, key, node.lineno, description, mutated.decode()))
    return mutants


# --- running -------------------------------------------------------------------------------------

_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".venv-relay", "node_modules", "var", "__pycache__", ".hypothesis", "artifacts", "*.pyc"
)


class Workspace:
    """A private copy of the repository: one worker mutates and tests only here."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mostro-mutation-"))
        self.repo = self.dir / "repo"
        shutil.copytree(ROOT, self.repo, ignore=_IGNORED, symlinks=True)
        for link in (".venv", ".venv-relay"):
            if (ROOT / link).exists():
                (self.repo / link).symlink_to((ROOT / link).resolve())

    def run(self, tests: tuple[str, ...], timeout: float, path: str | None = None, source: str | None = None):
        """Run `tests`, optionally with `path` replaced by `source`; returns (outcome, seconds)."""
        target = self.repo / path if path else None
        original = target.read_bytes() if target else None
        if target:
            target.write_text(source)
            _drop_bytecode(target)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env |= {"MOSTRO_VAR_DIR": str(self.dir / "var"), "PYTHONHASHSEED": "0"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:randomly", *tests]
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                cwd=self.repo,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                output, _ = process.communicate(timeout=timeout)
                outcome = {0: "survived", 5: "no-tests"}.get(process.returncode, "killed")
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                outcome = "timeout"
        finally:
            if target:
                target.write_bytes(original)
                _drop_bytecode(target)
        self.last_output = output.decode(errors="replace")
        return outcome, time.monotonic() - started

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _drop_bytecode(path: Path) -> None:
    # A same-size edit within one second would otherwise reuse the stale .pyc (mtime + size check).
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink(missing_ok=True)


def run_all(modules: list[str], mutants: list[Mutant], workers: int, on_module_done) -> dict[str, dict]:
    """Each module's mutants in `workers` in-process runs (`mutation_plugin`); what cannot be
    applied in process falls back to a fresh pytest process in a private copy.
    `on_module_done(module, results)` runs as soon as a module is finished (results are kept
    even if a later module is interrupted)."""
    results: dict[str, dict] = {}
    lock = threading.Lock()
    started = time.monotonic()
    jobs: queue.Queue[tuple[str, list[Mutant]]] = queue.Queue()
    pending_chunks: dict[str, int] = {}
    for module in modules:
        own = [m for m in mutants if m.module == module]
        for i in range(workers):
            if own[i::workers]:
                jobs.put((module, own[i::workers]))
                pending_chunks[module] = pending_chunks.get(module, 0) + 1
    total = len(mutants)

    def store(mutant: Mutant, entry: dict) -> None:
        with lock:
            results[mutant.key + "\0" + mutant.module] = {
                "module": mutant.module,
                "key": mutant.key,
                "line": mutant.line,
                "outcome": entry["outcome"],
                "seconds": entry.get("seconds", 0),
                **({"test": entry["test"]} if entry.get("test") else {}),
            }
            mark = "" if entry["outcome"] in ("killed", "timeout") else "  <-- " + entry["outcome"]
            print(
                f"[{len(results)}/{total}] {mutant.module} L{mutant.line} {entry['outcome']:8} {mutant.key}{mark}",
                flush=True,
            )
            if len(results) % 50 == 0:
                print(f"    {time.monotonic() - started:.0f} s elapsed", flush=True)

    snapshot = Workspace()  # the in-process runs read here: edits made meanwhile cannot reach them
    failed: list[str] = []

    def work() -> None:
        while True:
            try:
                module, chunk = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                fallback = _run_in_process(module, chunk, store, snapshot.repo)
            except SystemExit as stop:  # this module cannot run; the others still can
                print(f"!! {stop}", flush=True)
                failed.append(module)
                continue
            if fallback:
                space = Workspace()
                try:
                    selection = TARGETS[module].tests
                    _, baseline = space.run(selection, timeout=900)
                    for mutant in fallback:
                        outcome, seconds = space.run(selection, 2 * baseline + 30, mutant.path, mutant.source)
                        store(mutant, {"outcome": outcome, "seconds": round(seconds, 1), "test": "(own process)"})
                finally:
                    space.remove()
            with lock:
                pending_chunks[module] -= 1
                if pending_chunks[module] == 0:
                    on_module_done(module, {k: v for k, v in results.items() if v["module"] == module})

    threads = [threading.Thread(target=work) for _ in range(max(1, workers))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        snapshot.remove()
    if failed:
        print(f"!! not run: {', '.join(failed)} (see the messages above)", flush=True)
    return results


def _run_in_process(module: str, chunk: list[Mutant], store, repo: Path) -> list[Mutant]:
    """Run `chunk` through the plugin (restarting after a timeout); returns the fallbacks."""
    target = TARGETS[module]
    scratch = Path(tempfile.mkdtemp(prefix="mostro-mutation-"))
    spec, out = scratch / "spec.json", scratch / "results.jsonl"
    by_key = {m.key: m for m in chunk}
    spec.write_text(
        json.dumps(
            {
                "module": target.path[:-3].replace("/", "."),
                "mutants": [{"key": m.key, "source": m.source} for m in chunk],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "MOSTRO_VAR_DIR": str(scratch / "var"),
        "MUTATION_SPEC": str(spec),
        "MUTATION_RESULTS": str(out),
        "PYTHONHASHSEED": "0",
    }
    command = [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "scripts.mutation_plugin", *target.tests]
    seen: set[str] = set()
    fallback: list[Mutant] = []
    try:
        for _ in range(len(chunk) + 1):
            process = subprocess.run(command, cwd=repo, env=env, capture_output=True, check=False)
            lines = out.read_text().splitlines() if out.exists() else []
            for line in lines:
                entry = json.loads(line)
                if entry["key"] == "<baseline>":
                    raise SystemExit(f"{module}: its tests fail without any mutant ({entry['test']})")
                if entry["key"] in seen:
                    continue
                seen.add(entry["key"])
                if entry["outcome"] == "fallback":
                    fallback.append(by_key[entry["key"]])
                else:
                    store(by_key[entry["key"]], entry)
            if len(seen) == len(chunk):
                return fallback
            if process.returncode != 3:  # not the watchdog: the plugin itself broke
                print(process.stdout.decode(errors="replace")[-3000:])
                raise SystemExit(f"{module}: the in-process run stopped (exit {process.returncode})")
        raise SystemExit(f"{module}: too many restarts")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- reporting -----------------------------------------------------------------------------------


def load_equivalents() -> dict[tuple[str, str], str]:
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text())
    return {(item["module"], item["mutant"]): item["reason"] for item in data.get("equivalent", [])}


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"modules": {}}


def merge_results(
    stored: dict, modules: list[str], results: dict[str, dict], seconds: float, *, partial: bool = False
) -> dict:
    """Store this run's outcomes; `partial` (survivors re-run) keeps the module's other entries
    that the generator still produces."""
    for module in modules:
        fresh = [r for r in results.values() if r["module"] == module]
        if partial and module in stored["modules"]:
            rerun = {r["key"] for r in fresh}
            generated = {m.key for m in generate(module)}
            fresh += [
                r | {"module": module}
                for r in stored["modules"][module]["mutants"]
                if r["key"] not in rerun and r["key"] in generated
            ]
        entries = sorted(fresh, key=lambda r: (r["line"], r["key"]))
        stored["modules"][module] = {
            "path": TARGETS[module].path,
            "tests": list(TARGETS[module].tests),
            "ran_at": time.strftime("%Y-%m-%d %H:%M"),
            "seconds": round(seconds),
            "mutants": [{k: v for k, v in r.items() if k != "module"} for r in entries],
        }
    return stored


@dataclass(frozen=True)
class KeptModule:
    """A module's row and survivor section as the generated part of TESTING.md shows them."""

    row: str
    section: str


def doc_modules(doc: str) -> dict[str, KeptModule]:
    """The generated part's row and `### `path`` section of each module, by path: a run of some
    modules rewrites the part, and the modules it did not run (absent from results.json, e.g.
    after the file was lost) keep what the doc says of them instead of turning into "not run"."""
    if DOC_BEGIN not in doc or DOC_END not in doc:
        return {}
    part = doc[doc.index(DOC_BEGIN) + len(DOC_BEGIN) : doc.index(DOC_END)]
    rows: dict[str, str] = {}
    for line in part.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 6 and cells[1] != "not run":
            if len(cells) == 6:  # a table written before the run column
                cells.append("earlier")
            rows[cells[0].strip("`")] = "| " + " | ".join(cells) + " |"
    sections: dict[str, str] = {}
    for chunk in part.split("\n### ")[1:]:
        heading, _, body = chunk.partition("\n")
        if heading.startswith("`") and heading.endswith("`"):
            sections[heading.strip("`")] = body.strip("\n")
    return {path: KeptModule(row, sections.get(path, "")) for path, row in rows.items()}


def report(stored: dict, equivalents: dict[tuple[str, str], str], kept: dict[str, KeptModule] | None = None) -> str:
    """The table and survivor list of the stored results; a module absent from them is shown as
    `kept` has it (its row and section in the doc), else as "not run"."""
    lines = [
        "| module | mutants | killed | equivalent | other survivors | score | run |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    details: list[str] = []
    for module, target in TARGETS.items():
        data = stored["modules"].get(module)
        if data is None:
            previous = (kept or {}).get(target.path)
            if previous is None:
                lines.append(f"| `{target.path}` | not run | | | | | |")
                continue
            lines.append(previous.row)
            if previous.section:
                details.append(f"\n### `{target.path}`\n\n{previous.section}")
            continue
        mutants = data["mutants"]
        killed = [m for m in mutants if m["outcome"] in ("killed", "timeout")]
        survivors = [m for m in mutants if m not in killed]
        equivalent = [m for m in survivors if (module, m["key"]) in equivalents]
        open_ = [m for m in survivors if (module, m["key"]) not in equivalents]
        relevant = len(mutants) - len(equivalent)
        score = 100.0 * len(killed) / relevant if relevant else 100.0
        lines.append(
            f"| `{target.path}` | {len(mutants)} | {len(killed)} | {len(equivalent)} | {len(open_)} | {score:.1f} % "
            f"| {data.get('ran_at', '')} |"
        )
        if survivors:
            details.append(f"\n### `{target.path}`\n")
            for m in open_:
                details.append(f"* **not killed** (line {m['line']}): {m['key']}")
            for m in equivalent:
                details.append(f"* line {m['line']}: {m['key']}  \n  *Equivalent:* {equivalents[(module, m['key'])]}")
    stale = [
        f"* {module}: {key}"
        for (module, key) in equivalents
        if module in stored["modules"]
        and not any(m["key"] == key and m["outcome"] == "survived" for m in stored["modules"][module]["mutants"])
    ]
    if stale:
        details.append("\n### Listed as equivalent but no longer surviving (remove from the list)\n")
        details.extend(stale)
    runs = stored.get("runs", [])
    timing = [f"{', '.join(r['modules'])}: {r['mutants']} mutants in {r['seconds']} s" for r in runs[-6:]]
    return "\n".join(
        [*lines, "", "Recent runs: " + ("; ".join(timing) or "none"), "", "## Surviving mutants", *details, ""]
    )


def update_doc(text: str) -> None:
    doc = DOC.read_text()
    begin, end = doc.index(DOC_BEGIN) + len(DOC_BEGIN), doc.index(DOC_END)
    DOC.write_text(doc[:begin] + "\n" + text + "\n" + doc[end:])


def _to_rerun(stored: list[dict], key: str, *, new_too: bool) -> bool:
    """A stored survivor, or (with `new_too`) a mutant that no stored run produced."""
    outcome = next((m["outcome"] for m in stored if m["key"] == key), None)
    return outcome in ("survived", "uncovered") or (new_too and outcome is None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", default="", help="comma-separated short names or paths (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="parallel copies (1–2 on a shared machine)")
    parser.add_argument("--only", default="", help="run only mutants whose key contains this text")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-run only the stored survivors (after adding tests to an unchanged module)",
    )
    parser.add_argument(
        "--stale",
        action="store_true",
        help="re-run the stored survivors and the mutants no stored run has seen (after a merge changed a module)",
    )
    parser.add_argument(
        "--without-guards", action="store_true", help=f"leave {GUARDS} out of every selection (the 'before' score)"
    )
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--report", action="store_true", help="print the report of stored results and stop")
    parser.add_argument("--update-doc", action="store_true", help="also rewrite the generated part of TESTING.md")
    args = parser.parse_args()

    by_path = {t.path: name for name, t in TARGETS.items()}
    wanted = [m.strip() for m in args.modules.replace(" ", ",").split(",") if m.strip()] or list(TARGETS)
    unknown = [m for m in wanted if m not in TARGETS and m not in by_path]
    if unknown:
        parser.error(f"unknown modules {unknown}; choose from {', '.join(TARGETS)}")
    modules = [by_path.get(m, m) for m in wanted]
    equivalents = load_equivalents()
    if args.without_guards:
        os.environ["MUTATION_WITHOUT_GUARDS"] = "1"
        global RESULTS, REPORT
        RESULTS, REPORT = RESULTS.with_name("results-without-guards.json"), REPORT.with_name("report-without-guards.md")

    if args.report:
        text = report(load_results(), equivalents, doc_modules(DOC.read_text()))
        print(text)
        if args.update_doc:
            update_doc(text)
        return 0
    mutants = [m for module in modules for m in generate(module) if args.only in m.key]
    if args.survivors or args.stale:
        stored = load_results()["modules"]
        missing = [module for module in modules if module not in stored]
        if missing:
            parser.error(f"no stored results for {missing}: run them in full first")
        mutants = [m for m in mutants if _to_rerun(stored[m.module]["mutants"], m.key, new_too=args.stale)]
    if args.list:
        for m in mutants:
            print(f"{m.module} L{m.line}: {m.key}")
        print(f"{len(mutants)} mutants")
        return 0
    started = time.monotonic()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)

    def module_done(module: str, module_results: dict[str, dict]) -> None:
        if args.only:
            return  # a partial run is never stored
        stored = merge_results(
            load_results(), [module], module_results, time.monotonic() - started, partial=args.survivors or args.stale
        )
        RESULTS.write_text(json.dumps(stored, indent=1, ensure_ascii=False))

    results = run_all(modules, mutants, max(1, args.workers), module_done)
    elapsed = time.monotonic() - started
    if args.only:
        survivors = [r for r in results.values() if r["outcome"] == "survived"]
        print(f"{len(results) - len(survivors)} killed, {len(survivors)} survived (partial run; nothing stored)")
        return 0
    stored = load_results()
    stored.setdefault("runs", []).append({"modules": modules, "seconds": round(elapsed), "mutants": len(results)})
    RESULTS.write_text(json.dumps(stored, indent=1, ensure_ascii=False))
    text = report(stored, equivalents, doc_modules(DOC.read_text()))
    REPORT.write_text(text)
    print(text)
    print(f"{len(results)} mutants in {elapsed:.0f} s; report in {REPORT.relative_to(ROOT)}")
    if args.update_doc:
        update_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
