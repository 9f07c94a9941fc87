"""Every citation in the repository points at something in the repository.

Code and docs cite the protocol as `docs/PROTOCOL.md §<Section>` (a heading's first word) and other
documents by their path. A citation of a file that is not in the repository (the external spec the
project started from, a path on one machine), or of a section a document does not have, fails here.
"""

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_DIRS = ("mostro_site", "orders", "disputes", "devfee", "lightning", "nostrbridge", "tests", "docs")
SCANNED_TOP = ("README.md", "Makefile", "pyproject.toml", ".importlinter", ".pre-commit-config.yaml")
SCANNED_SUFFIXES = {".py", ".md", ".sql", ".sh", ".toml", ".html", ".js", ".txt", ".yaml", ".cfg"}
SKIPPED = ("node_modules", "lightning/grpc", "__pycache__")

# A document name as code writes it: `docs/PROTOCOL.md`, `README.md`, `01-transport.md`.
DOC_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
# `§Take`, `§5`, `§1.10.7`: a section of the document named before it on the same line.
SECTION = re.compile(r"§\s?([\w.-]*\w)")
FOREIGN_PATHS = re.compile(r"/work/|\.\./shared/|shared/(?:protocol|reference)/")
VECTOR_SHA256 = {
    "nip44.vectors.json": "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040",
    "mostro.vectors.json": "19a4840bdacb1ed4bfc49ba32d6d3b4c87b99058d35637c63ff36a9fa82c050e",
}


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_TOP if (ROOT / name).exists()]
    for top in SCANNED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            skipped = any(s in rel for s in SKIPPED) or path == Path(__file__).resolve()
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and not skipped:
                files.append(path)
    return files


def resolve_doc(name: str, citing: Path) -> Path | None:
    """The repository file a document name refers to: from the root, beside the citing file, or docs/."""
    for base in (ROOT, citing.parent, ROOT / "docs"):
        candidate = (base / name).resolve()
        if candidate.is_file() and ROOT in candidate.parents:
            return candidate
    return None


def section_ids(doc: Path) -> set[str]:
    """A heading's first word (`### Take — take-sell` → `Take`), and `5` for `## 5. Migrating`."""
    ids = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            words = line.lstrip("#").split()
            if words:
                ids.add(words[0].rstrip(".:"))
    return ids


def citation_problems(path: Path) -> list[str]:
    problems = []
    protocol = ROOT / "docs" / "PROTOCOL.md"
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{number}"
        if FOREIGN_PATHS.search(line):
            problems.append(f"{where}: path outside the repository: {line.strip()}")
        docs = [(m.end(), m.group(1)) for m in DOC_NAME.finditer(line)]
        for _, name in docs:
            if resolve_doc(name, path) is None:
                problems.append(f"{where}: cites {name}, which is not in the repository")
        for match in SECTION.finditer(line):
            before = [name for end, name in docs if end <= match.start()]
            doc = resolve_doc(before[-1], path) if before else protocol
            if doc is None:
                continue  # reported above
            if path == doc and not before:
                doc = protocol
            if match.group(1) not in section_ids(doc):
                problems.append(f"{where}: {doc.relative_to(ROOT)} has no section {match.group(1)}")
    return problems


def test_every_citation_names_a_file_and_section_of_the_repository():
    problems = [problem for path in scanned_files() for problem in citation_problems(path)]
    assert problems == []


def test_the_scan_sees_the_citations_it_checks():
    # Guards the test above against a pattern that silently matches nothing.
    sample = ROOT / "orders" / "handlers" / "take_sell.py"
    assert "docs/PROTOCOL.md §Take" in sample.read_text(encoding="utf-8")
    assert sample in scanned_files()
    assert {"Take", "Cant-do", "Differences", "State-machine"} <= section_ids(ROOT / "docs" / "PROTOCOL.md")


def test_a_missing_document_or_section_is_reported():
    bogus = ROOT / "tests" / "foundation" / "_citation_probe.txt"
    bogus.write_text("see 03-actions.md §2.2 and docs/PROTOCOL.md §NoSuchSection and /work/shared/x\n")
    try:
        problems = citation_problems(bogus)
    finally:
        bogus.unlink()
    assert problems == [
        "tests/foundation/_citation_probe.txt:1: path outside the repository: "
        "see 03-actions.md §2.2 and docs/PROTOCOL.md §NoSuchSection and /work/shared/x",
        "tests/foundation/_citation_probe.txt:1: cites 03-actions.md, which is not in the repository",
        "tests/foundation/_citation_probe.txt:1: docs/PROTOCOL.md has no section NoSuchSection",
    ]


@pytest.mark.parametrize(("name", "sha256"), sorted(VECTOR_SHA256.items()))
def test_the_wire_vectors_are_the_published_files(name, sha256):
    assert hashlib.sha256((ROOT / "tests" / "vectors" / name).read_bytes()).hexdigest() == sha256


# `orders/services/take.py`, `lightning/simnet/` in a document: a path of this repository.
REPO_PATH = re.compile(
    r"`((?:mostro_site|orders|disputes|devfee|lightning|nostrbridge|tests|docs|scripts|benchmarks|templates|static)/[\w./-]*)`"
)


def test_the_documents_name_only_files_that_exist():
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for path in REPO_PATH.findall(line):
                if not (ROOT / path.rstrip("/")).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{number}: {path}")
    assert missing == []
