"""The statement layer imports cleanly as the first module a process loads, before Django has
loaded any database backend: on PostgreSQL nothing loads SQLite's backend first, and importing
its `operations` module alone is a circular import (`nostrbridge.rows`). A fresh interpreter
per module, since this process has long loaded every backend."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_IMPORTS = (
    "nostrbridge.rows",
    "nostrbridge.statement_sql",
    "nostrbridge.statements",
    "nostrbridge.guarded",  # the ones above the models need the app registry: django.setup()
)


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_the_module_imports_first_in_a_fresh_process(module: str):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mostro_site.settings.test"}
    code = (
        f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('django.db.backends.postgresql')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr.strip().splitlines()[-1:]) == (0, [])
