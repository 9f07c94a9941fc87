"""Reading the shipped deployment files as their engines would: systemd units, compose.yaml, the
Dockerfile, and the README's install steps. No container engine or systemd is needed.

A command from those files is turned into one that runs here: the image's and the units'
paths (`/srv/mostro` for the code, `/srv/mostro/var` for state) point at this checkout and a
temporary directory, and fixed ports at free ones. Nothing else about the command changes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.relays.net import REPO_ROOT

UNIT_DIR = REPO_ROOT / "deploy" / "systemd"
CODE_DIR = "/srv/mostro"
VAR_DIR = "/srv/mostro/var"

# Read by Python or Django themselves rather than by the project's settings.
PROCESS_VARIABLES = {
    "DJANGO_SETTINGS_MODULE": "Django: which settings module",
    "PYTHONUNBUFFERED": "Python: unbuffered output for the journal / container logs",
    "PATH": "the shell: the virtual environment's bin first",
}


def settings_variables() -> set[str]:
    """Every environment variable the settings read (`env.<type>("NAME", ...)`), plus env.py's own."""
    names: set[str] = set()
    sources = [*(REPO_ROOT / "mostro_site" / "settings").glob("*.py"), REPO_ROOT / "mostro_site" / "config" / "env.py"]
    for path in sources:
        text = path.read_text()
        names |= set(re.findall(r'env\.[a-z_]+\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z][A-Z0-9_]+)"', text))
    return names


# --- systemd --------------------------------------------------------------------------------------


@dataclass
class Unit:
    name: str
    sections: dict[str, dict[str, list[str]]]

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def value(self, section: str, key: str) -> str | None:
        values = self.values(section, key)
        return values[-1] if values else None

    @property
    def environment(self) -> dict[str, str]:
        env = {}
        for line in self.values("Service", "Environment"):
            for assignment in shlex.split(line):
                name, _, value = assignment.partition("=")
                env[name] = value
        return env


def parse_unit(path: Path) -> Unit:
    """systemd's INI dialect: repeated keys accumulate, `\\` continues a line, `#`/`;` comment."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(path.name, sections)


def units() -> dict[str, Unit]:
    return {path.name: parse_unit(path) for path in sorted(UNIT_DIR.glob("*.service"))}


def expand_specifiers(text: str, *, instance: str, runtime_dir: Path) -> str:
    """The specifiers these units use: %i (instance), %t (runtime directory), %% (a percent)."""
    return text.replace("%%", "\0").replace("%i", instance).replace("%t", str(runtime_dir)).replace("\0", "%")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip().strip('"')
    return env


# --- compose ----------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: object, variables: dict[str, str]) -> object:
    """Compose's `${NAME}` / `${NAME:-default}` (the forms compose.yaml uses), recursively."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: variables.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    return value


def compose(variables: dict[str, str] | None = None) -> dict:
    """compose.yaml with merge keys resolved (PyYAML does) and variables interpolated."""
    raw = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return interpolate(raw, variables or {})


def node_services(spec: dict) -> dict[str, dict]:
    """Services that run the project's image (not PostgreSQL, Redis)."""
    return {name: service for name, service in spec["services"].items() if "build" in service}


# --- Dockerfile -------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def dockerfile_stages(path: Path = REPO_ROOT / "Dockerfile") -> list[Stage]:
    stages: list[Stage] = []
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    for line in logical:
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip()))
        else:
            stages[-1].instructions.append((word, args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    """`["a", "b"]` (exec form) or a shell-form string."""
    if args.startswith("["):
        return yaml.safe_load(args)
    return shlex.split(args)


def env_assignments(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


def readme_install_commands() -> list[str]:
    """The commands of the README's "Production install" block."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Production install", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
