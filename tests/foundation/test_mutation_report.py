"""`scripts/mutation.py --report --update-doc` keeps what TESTING.md says of the modules a run
did not cover (results.json holds only the modules run since it was created, e.g. after it was
lost), instead of rewriting their rows as "not run" and dropping their survivor lists."""

from scripts.mutation import DOC_BEGIN, DOC_END, TARGETS, KeptModule, doc_modules, report

OLD_DOC = f"""# Testing

prose before
{DOC_BEGIN}
| module | mutants | killed | equivalent | other survivors | score |
|---|---:|---:|---:|---:|---:|
| `orders/services/payout.py` | 325 | 313 | 12 | 0 | 100.0 % |
| `orders/services/escrow.py` | 195 | 174 | 21 | 0 | 100.0 % |
| `orders/status.py` | not run | | | | |
| `orders/bonds/slash.py` | 109 | 94 | 4 | 11 | 89.5 % |

Recent runs: payout: 324 mutants in 2990 s

## Surviving mutants

### `orders/services/payout.py`

* line 91: f: drop `x`  \n  *Equivalent:* because.

### `orders/bonds/slash.py`

* **not killed** (line 70): side_bond: condition `role == BondRole.MAKER` → True

### Listed as equivalent but no longer surviving (remove from the list)

* payout: g: gone
{DOC_END}
prose after
"""

SLASH_RUN = {
    "modules": {
        "bond-slash": {
            "path": "orders/bonds/slash.py",
            "ran_at": "2026-12-06 12:10",
            "mutants": [
                {"key": "side_bond: condition `role == BondRole.MAKER` → True", "line": 70, "outcome": "killed"},
                {"key": "SlashChoice: drop `slots=` from `dataclass(…)`", "line": 42, "outcome": "survived"},
            ],
        }
    },
    "runs": [{"modules": ["bond-slash"], "seconds": 600, "mutants": 2}],
}
EQUIVALENTS = {("bond-slash", "SlashChoice: drop `slots=` from `dataclass(…)`"): "`frozen=True` already refuses it."}


def _rows(text: str) -> dict[str, str]:
    return {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}


def test_the_doc_rows_and_sections_are_read_by_path():
    kept = doc_modules(OLD_DOC)

    assert kept == {
        "orders/services/payout.py": KeptModule(
            "| `orders/services/payout.py` | 325 | 313 | 12 | 0 | 100.0 % | earlier |",
            "* line 91: f: drop `x`  \n  *Equivalent:* because.",
        ),
        "orders/services/escrow.py": KeptModule(
            "| `orders/services/escrow.py` | 195 | 174 | 21 | 0 | 100.0 % | earlier |", ""
        ),
        "orders/bonds/slash.py": KeptModule(
            "| `orders/bonds/slash.py` | 109 | 94 | 4 | 11 | 89.5 % | earlier |",
            "* **not killed** (line 70): side_bond: condition `role == BondRole.MAKER` → True",
        ),
    }  # "not run" is nothing to keep, and the stale-equivalents heading is not a module
    assert doc_modules("no markers") == {}


def test_a_run_of_one_module_keeps_the_other_modules_as_the_doc_has_them():
    text = report(SLASH_RUN, EQUIVALENTS, doc_modules(OLD_DOC))
    rows = _rows(text)

    assert list(rows) == [target.path for target in TARGETS.values()]  # every module, in TARGETS order
    assert rows["orders/bonds/slash.py"] == "| `orders/bonds/slash.py` | 2 | 1 | 1 | 0 | 100.0 % | 2026-12-06 12:10 |"
    assert (
        rows["orders/services/payout.py"] == "| `orders/services/payout.py` | 325 | 313 | 12 | 0 | 100.0 % | earlier |"
    )
    assert (
        rows["orders/services/escrow.py"] == "| `orders/services/escrow.py` | 195 | 174 | 21 | 0 | 100.0 % | earlier |"
    )
    assert rows["orders/status.py"] == "| `orders/status.py` | not run | | | | | |"
    # The kept module's survivors stay listed; the re-run module's come from the run.
    assert "### `orders/services/payout.py`\n\n* line 91: f: drop `x`  \n  *Equivalent:* because." in text
    assert "### `orders/bonds/slash.py`\n\n* line 42: SlashChoice: drop `slots=` from `dataclass(…)`  \n" in text
    assert "**not killed** (line 70)" not in text
    assert "Recent runs: bond-slash: 2 mutants in 600 s" in text


def test_a_second_update_leaves_the_kept_rows_unchanged():
    first = report(SLASH_RUN, EQUIVALENTS, doc_modules(OLD_DOC))
    doc = f"{DOC_BEGIN}\n{first}\n{DOC_END}"

    second = report(SLASH_RUN, EQUIVALENTS, doc_modules(doc))

    assert second == first
