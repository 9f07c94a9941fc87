"""Every environment variable the settings read is documented in .env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting():
    # env.float(…) and the readers that keep a bad value for the checks, env_float_or_text(…)
    read = set(re.findall(r'env[._][a-z_]+\(\s*"([A-Z_]+)"', (ROOT / "mostro_site/settings/base.py").read_text()))
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert sorted(read - documented) == []
