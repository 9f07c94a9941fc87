"""`mostro_commit_hash` in the info event: from the package metadata, else the checkout, else ""."""

import json
import shutil
import subprocess
from importlib import metadata

import pytest

from nostrbridge import build_info
from nostrbridge.build_info import commit_from_checkout, commit_from_metadata

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def _repo(root, head: str, refs: dict[str, str] | None = None, packed: str = ""):
    git = root / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for ref, value in (refs or {}).items():
        (git / ref).parent.mkdir(parents=True, exist_ok=True)
        (git / ref).write_text(value + "\n")
    if packed:
        (git / "packed-refs").write_text(packed)
    return git


def test_branch_ref(tmp_path):
    _repo(tmp_path, "ref: refs/heads/main", {"refs/heads/main": COMMIT})
    assert commit_from_checkout(tmp_path) == COMMIT


def test_detached_head(tmp_path):
    _repo(tmp_path, COMMIT)
    assert commit_from_checkout(tmp_path) == COMMIT


def test_packed_ref(tmp_path):
    _repo(
        tmp_path,
        "ref: refs/heads/main",
        packed=f"# pack-refs with: peeled\n{OTHER} refs/heads/other\n{COMMIT} refs/heads/main\n",
    )
    assert commit_from_checkout(tmp_path) == COMMIT


def test_worktree_reads_the_main_repository(tmp_path):
    main_git = _repo(tmp_path / "main", "ref: refs/heads/main", {"refs/heads/wt": COMMIT})
    wt_git = main_git / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/wt\n")
    (wt_git / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {wt_git}\n")
    assert commit_from_checkout(tmp_path / "wt") == COMMIT


@pytest.mark.parametrize("head", ["ref: refs/heads/missing", "not a hash", COMMIT.upper(), COMMIT[:7], ""])
def test_anything_else_is_empty(tmp_path, head):
    _repo(tmp_path, head)
    assert commit_from_checkout(tmp_path) == ""


def test_no_checkout_is_empty(tmp_path):
    assert commit_from_checkout(tmp_path) == ""


class _Dist:
    def __init__(self, text):
        self.text = text

    def read_text(self, name):
        assert name == "direct_url.json"
        return self.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"url": "git+https://x/y", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}), COMMIT),
        (json.dumps({"url": "file:///src", "dir_info": {}}), ""),
        (None, ""),  # installed from an index or an sdist: no direct_url.json
        ("{not json", ""),
        (json.dumps({"vcs_info": {"commit_id": "abc"}}), ""),
    ],
)
def test_package_metadata(monkeypatch, text, expected):
    monkeypatch.setattr(build_info.metadata, "distribution", lambda name: _Dist(text))
    assert commit_from_metadata() == expected


def test_package_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(build_info.metadata, "distribution", missing)
    assert commit_from_metadata() == ""


@pytest.mark.skipif(shutil.which("git") is None or not (build_info.SOURCE_ROOT / ".git").exists(), reason="no checkout")
def test_this_checkout_matches_git():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=build_info.SOURCE_ROOT, capture_output=True, text=True)
    assert commit_from_checkout() == head.stdout.strip()


@pytest.mark.django_db
def test_the_info_event_carries_it(monkeypatch):
    from nostrbridge.node_announcements import info_event_enqueue
    from nostrbridge.protocol.nip01 import Event

    monkeypatch.setattr("nostrbridge.node_announcements.mostro_commit_hash", lambda: COMMIT)
    row = info_event_enqueue(lnd=None, min_interval_s=0)
    assert ["mostro_commit_hash", COMMIT] in Event.from_json(row.event_json).tags
