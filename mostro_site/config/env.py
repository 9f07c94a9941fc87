"""Reads configuration from the process environment and an optional `.env` file.

Precedence is Mostro's: process environment first, then `<BASE_DIR>/.env`. Blank values in
the environment count as unset, so an empty `MOSTRO_NSEC_PRIVKEY=` never shadows the file.
"""

import contextlib
import math
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# What SECRET_KEY is when nothing sets DJANGO_SECRET_KEY; `manage.py check` warns (mostro.W002).
INSECURE_SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105 - the known placeholder

_env_file = Path(os.environ.get("MOSTRO_ENV_FILE", BASE_DIR / ".env"))
if _env_file.is_file():
    # overwrite=False keeps the real environment in charge.
    environ.Env.read_env(str(_env_file), overwrite=False)

for _name, _value in list(os.environ.items()):
    if (_name.startswith(("MOSTRO_", "LND_")) or _name in {"DATABASE_URL", "REDIS_URL"}) and _value.strip() == "":
        del os.environ[_name]


# The words written to mean false. `env.bool` reads every word it does not know as false too,
# a typo of "true" included.
_FALSE_WORDS = frozenset({"false", "off", "no", "n"})


def env_float_or_text(name: str, *, default: float) -> float | str:
    """`env.float`, except that a value it cannot read stays the text written: the system
    checks then name it and refuse to start (mostro_site/checks.py), not a traceback at import."""
    if name not in os.environ:
        return default
    with contextlib.suppress(ValueError):
        value = float(os.environ[name])  # "1e3" is 1000.0 (env.float keeps the digits: 13.0)
        if math.isfinite(value):
            return value
    try:
        return env.float(name)  # what it read before ("0.25s": 0.25) still reads the same
    except ValueError:
        return os.environ[name]


def env_bool_or_text(name: str, *, default: bool) -> bool | str:
    """`env.bool`, except that a word neither true nor false stays the text written, for the
    system checks to refuse: `env.bool` would read "ture" as false."""
    value = env.bool(name, default=default)
    word = os.environ.get(name, "").strip().lower()
    if value or name not in os.environ or word in _FALSE_WORDS or word.lstrip("+-").isdigit():
        return value
    return os.environ[name]


SECRET_FILE_MODE = 0o600


class EnvFileError(Exception):
    pass


def env_file_has(path: Path, name: str) -> bool:
    """True when the file sets `name` to a non-empty value."""
    if not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name and value.strip():
            return True
    return False


def write_env_secret(path: Path, name: str, value: str) -> None:
    """Append `name=value` to an env file and make it readable by its owner only (0600).

    A file that already sets `name` is refused (a key is never overwritten). The mode is set
    on every write, so a file that existed world-readable is not left that way with a secret.
    """
    if env_file_has(path, name):
        raise EnvFileError(f"{path} already holds {name}; refusing to overwrite a key.")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, SECRET_FILE_MODE)
    try:
        os.fchmod(descriptor, SECRET_FILE_MODE)  # before the secret is written
        os.write(descriptor, f"{name}={value}\n".encode())
    finally:
        os.close(descriptor)
