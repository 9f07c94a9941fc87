"""Which build of this node is running: the commit hash the info event publishes as
`mostro_commit_hash` (docs/PROTOCOL.md §Info-event).

From the installed package's metadata when pip installed it from a git checkout or URL (PEP 610
`direct_url.json`, `vcs_info.commit_id`), else from the source checkout the code runs in (read
from `.git` directly: no subprocess, no network), else "" — an empty tag, never an error.
"""

import functools
import json
import logging
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

DISTRIBUTION = "mostro-django"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
_HEX = frozenset("0123456789abcdef")


def _is_commit(text: str) -> bool:
    return len(text) == 40 and set(text) <= _HEX


def commit_from_metadata(distribution: str = DISTRIBUTION) -> str:
    try:
        raw = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return ""
    try:
        commit = str(json.loads(raw or "{}").get("vcs_info", {}).get("commit_id", ""))
    except (ValueError, AttributeError):
        return ""
    return commit if _is_commit(commit) else ""


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text().strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def _read_ref(git_dir: Path, ref: str) -> str:
    common = git_dir
    if (git_dir / "commondir").is_file():  # a worktree keeps its branches in the main repository
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        if (base / ref).is_file():
            return (base / ref).read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return ""


def commit_from_checkout(root: Path = SOURCE_ROOT) -> str:
    try:
        git_dir = _git_dir(root)
        if git_dir is None:
            return ""
        head = (git_dir / "HEAD").read_text().strip()
        commit = _read_ref(git_dir, head.removeprefix("ref:").strip()) if head.startswith("ref:") else head
    except OSError as exc:
        logger.info("no commit hash from %s: %s", root, exc)
        return ""
    return commit if _is_commit(commit) else ""


@functools.cache
def mostro_commit_hash() -> str:
    """The running build's full commit hash, or "" when it cannot be known."""
    return commit_from_metadata() or commit_from_checkout()
