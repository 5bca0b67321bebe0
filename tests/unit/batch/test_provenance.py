"""Code provenance: versions of the distributions a managed task runs, and git state."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from lute.io import provenance
from lute.io.db import ResultsDB
from lute.io.provenance import CodeVersion, Provenance, capture, differences, from_log, git_state
from lute.managed_tasks import get_managed_task


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
         *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("X = 1\n")
    (repo / "README").write_text("not code\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_a_clean_checkout_has_its_revision_and_no_changes(checkout: Path) -> None:
    state = git_state(checkout, ("pkg",))
    assert state is not None
    assert state.revision == git(checkout, "rev-parse", "HEAD")
    assert state.dirty is False
    assert state.changes == hashlib.sha256(b"").hexdigest()


def test_a_dirty_checkout_is_dirty_with_a_digest_of_its_changes(checkout: Path) -> None:
    clean = git_state(checkout, ("pkg",))
    (checkout / "pkg" / "new.py").write_text("untracked: not code the run imports yet\n")
    (checkout / "README").write_text("outside the packages\n")
    assert git_state(checkout, ("pkg",)) == clean
    (checkout / "pkg" / "code.py").write_text("X = 2\n")
    dirty = git_state(checkout, ("pkg",))
    assert dirty is not None and clean is not None
    assert (dirty.revision, dirty.dirty) == (clean.revision, True)
    assert dirty.changes != clean.changes
    (checkout / "pkg" / "code.py").write_text("X = 3\n")
    assert git_state(checkout, ("pkg",)).changes != dirty.changes  # type: ignore[union-attr]


def test_a_directory_that_is_no_checkout_has_no_git_state(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None


def test_an_editable_install_of_a_checkout_carries_its_git_state(
    checkout: Path, facility: Path,
) -> None:
    # the facility package, installed in editable mode from a git checkout (PEP 610)
    info = facility / "facility_tasks-0.1.dist-info"
    (info / "direct_url.json").write_text(json.dumps(
        {"url": checkout.as_uri(), "dir_info": {"editable": True}}))
    (info / "top_level.txt").write_text("pkg\n")
    found = capture("Greeter", "Greet")
    assert sorted(found.distributions) == ["facility-tasks", "lute-jid"]
    assert found.distributions["lute-jid"].version == metadata.version("lute-jid")
    facility_code = found.distributions["facility-tasks"]
    assert (facility_code.version, facility_code.revision, facility_code.dirty) == (
        "0.1", git(checkout, "rev-parse", "HEAD"), False)
    (checkout / "pkg" / "code.py").write_text("X = 2\n")
    assert differences(found, capture("Greeter", "Greet")) == [
        "facility-tasks: other uncommitted changes"]


def test_an_installed_copy_has_only_its_version(facility: Path) -> None:
    code = capture("Greeter", "Greet").distributions["facility-tasks"]
    assert code == CodeVersion("0.1")


def test_differences_name_what_changed() -> None:
    old = Provenance({"lute-jid": CodeVersion("0.1.0", "a" * 40, False, "c1"),
                      "facility-tasks": CodeVersion("0.1")})
    assert differences(old, old) == []
    new = Provenance({"lute-jid": CodeVersion("0.1.0", "b" * 40, False, "c1"),
                      "facility-tasks": CodeVersion("0.2")})
    assert differences(old, new) == [
        "facility-tasks 0.1 -> 0.2", f"lute-jid git {'a' * 12} -> {'b' * 12}"]
    assert differences(old, Provenance({"lute-jid": old.distributions["lute-jid"]})) == [
        "facility-tasks: no longer involved"]


def test_a_run_records_its_provenance_and_logs_it(make_config, tmp_path: Path) -> None:
    out = io.StringIO()
    config = make_config({"Test": {}})
    outcome = get_managed_task("Tester").execute(config, managed_name="Tester", out=out)
    assert outcome.status == "COMPLETED"
    logged = from_log(out.getvalue())
    assert logged is not None
    assert logged.distributions["lute-jid"].version == metadata.version("lute-jid")
    with ResultsDB.for_work_dir(tmp_path / "work") as db:
        (run,) = db.runs()
        assert provenance.recorded(db, run.id) == logged
        assert provenance.recorded(db, run.id + 1) is None
    assert logged == capture("Tester", "Test")  # what the JID computes for the same step
