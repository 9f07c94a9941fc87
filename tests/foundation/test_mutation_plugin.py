"""`scripts/mutation_plugin.py` applies a mutant to the live module: a `functools.cache`'d
function must run the mutated code, not answer from what the unmutated code cached (payout's
`_orm_broker` mutants survived that way), and undo restores both code and answers."""

import importlib
import sys

from scripts.mutation_plugin import apply_mutant

SOURCE = """import functools


@functools.cache
def answer(x):
    return x + {constant}
"""


def test_a_cached_function_runs_the_mutant_and_is_restored(tmp_path, monkeypatch):
    (tmp_path / "cached_mutant_target.py").write_text(SOURCE.format(constant=1))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("cached_mutant_target")
    try:
        assert module.answer(1) == 2  # cached by the unmutated code
        applied = apply_mutant("cached_mutant_target", SOURCE.format(constant=100))
        assert (applied.changed, module.answer(1)) == (True, 101)
        applied.undo()
        assert module.answer(1) == 2
    finally:
        sys.modules.pop("cached_mutant_target", None)
