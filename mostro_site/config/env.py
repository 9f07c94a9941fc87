"""Reads configuration from the process environment and an optional `.env` file.

Precedence is Mostro's: process environment first, then `<BASE_DIR>/.env`. Blank values in
the environment count as unset, so an empty `MOSTRO_NSEC_PRIVKEY=` never shadows the file.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

_env_file = Path(os.environ.get("MOSTRO_ENV_FILE", BASE_DIR / ".env"))
if _env_file.is_file():
    # overwrite=False keeps the real environment in charge.
    environ.Env.read_env(str(_env_file), overwrite=False)

for _name, _value in list(os.environ.items()):
    if (_name.startswith(("MOSTRO_", "LND_")) or _name in {"DATABASE_URL", "REDIS_URL"}) and _value.strip() == "":
        del os.environ[_name]
