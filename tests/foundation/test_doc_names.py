"""Every module, object and file the documents name exists (paths with a directory are checked
by test_citations.py; this covers dotted names and bare file names)."""

import importlib
import re
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_DIRS = (
    "mostro_site",
    "orders",
    "disputes",
    "devfee",
    "lightning",
    "nostrbridge",
    "tests",
    "scripts",
    "benchmarks",
)
# `orders.services.take`, `nostrbridge.event_settings.lnd_network_fetch()`, `orders.Trader`.
DOTTED = re.compile(r"`((?:mostro_site|orders|disputes|devfee|lightning|nostrbridge)(?:\.\w+)+)(?:\(\))?`")
FILE_SUFFIXES = {"py", "rs", "md", "toml", "json"}  # `orders.py`, mostrod's `orders.rs`: file names
# `runner.py` without its directory (the text around it says where).
BARE_FILE = re.compile(r"`([\w-]+\.py)`")


def dotted_problem(dotted: str) -> str | None:
    parts = dotted.split(".")
    if len(parts) == 2 and parts[1][:1].isupper():  # app_label.Model, as Django writes it
        try:
            apps.get_model(parts[0], parts[1])
        except LookupError:
            return "no such model"
        return None
    for length in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:length])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            break
    obj = importlib.import_module(".".join(parts[:length]))
    for name in parts[length:]:
        if not hasattr(obj, name):
            return f"{'.'.join(parts[:length])} has no {name}"
        obj = getattr(obj, name)
    return None


def code_file_names() -> set[str]:
    return {path.name for top in CODE_DIRS if (ROOT / top).exists() for path in (ROOT / top).rglob("*.py")}


def test_the_documents_name_only_modules_objects_and_files_that_exist():
    file_names = code_file_names()
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{doc.relative_to(ROOT)}:{number}"
            dotted = [name for name in DOTTED.findall(line) if name.rsplit(".", 1)[1] not in FILE_SUFFIXES]
            missing += [f"{where}: {name}: {dotted_problem(name)}" for name in dotted if dotted_problem(name)]
            missing += [f"{where}: {name}" for name in BARE_FILE.findall(line) if name not in file_names]
    assert missing == []


def test_a_name_that_does_not_exist_is_reported():
    assert dotted_problem("orders.services.take.order_take_sell") is None
    assert dotted_problem("orders.Trader") is None
    assert dotted_problem("orders.services.take.order_take_nothing") == "orders.services.take has no order_take_nothing"
    assert "nowhere_at_all.py" not in code_file_names()


def _contract_layers(text: str, name: str) -> list[str]:
    block = text.split(f"[importlinter:contract:{name}]", 1)[1].split("[importlinter:", 1)[0]
    lines = block.split("layers =", 1)[1].splitlines()
    return [line.strip() for line in lines[1:] if line.startswith("    ")]


def test_the_layers_contract_lists_every_module_of_the_bridge():
    """The bridge's machinery is listed module by module in the layers contract (its protocol
    package sits under lightning): a module added to the bridge must be added there too."""
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    in_layers = next(line for line in _contract_layers(text, "layers") if line.startswith("nostrbridge.management"))
    bridge = _contract_layers(text, "bridge")[0]
    listed = {name.strip().removeprefix("nostrbridge.") for name in in_layers.split(":")}
    on_disk = {p.stem if p.suffix else p.name for p in (ROOT / "nostrbridge").iterdir() if not p.name.startswith("_")}
    on_disk = {name for name in on_disk if (ROOT / "nostrbridge" / name).is_dir() or name.isidentifier()}
    assert listed == {name.strip() for name in bridge.split(":")} | {"migrations"}
    assert listed == on_disk - {"protocol"}
