"""``cpaf_jax.provenance``: the commit, tree state and command recorded with every result."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cpaf_jax import provenance as prov_mod
from cpaf_jax.provenance import command_line, describe, git_state, provenance

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> str:
    cfg = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    done = subprocess.run(
        ["git", "-C", str(repo), *cfg, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A git repository with one committed file."""
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    (r / "code.py").write_text("x = 1\n")
    _git(r, "add", "code.py")
    _git(r, "commit", "-q", "-m", "first")
    return r


def test_clean_checkout_records_its_full_commit(repo):
    state = git_state(repo)
    assert state["commit"] == _git(repo, "rev-parse", "HEAD")
    assert len(state["commit"]) == 40
    assert state["dirty"] is False and state["dirty_paths"] == [] and state["git_error"] is None


def test_an_edited_tracked_file_makes_the_tree_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    state = git_state(repo)
    assert state["dirty"] is True and state["dirty_paths"] == ["code.py"]


def test_a_staged_edit_is_dirty_too(repo):
    (repo / "code.py").write_text("x = 3\n")
    _git(repo, "add", "code.py")
    assert git_state(repo)["dirty"] is True


def test_untracked_files_leave_the_tree_clean(repo):
    # A run writes untracked outputs; they must not mark the code that made them dirty.
    (repo / "results.json").write_text("{}")
    (repo / "runs").mkdir()
    (repo / "runs" / "metrics.jsonl").write_text("")
    assert git_state(repo)["dirty"] is False


def test_a_new_commit_is_picked_up(repo):
    first = git_state(repo)["commit"]
    (repo / "code.py").write_text("x = 4\n")
    _git(repo, "commit", "-q", "-am", "second")
    second = git_state(repo)["commit"]
    assert second != first and second == _git(repo, "rev-parse", "HEAD")


def test_outside_a_git_checkout_the_commit_is_none_with_a_reason(tmp_path):
    plain = tmp_path / "site-packages"
    plain.mkdir()
    state = git_state(plain)
    assert state["commit"] is None and state["dirty"] is None
    assert "git" in state["git_error"].lower() or "not a" in state["git_error"].lower()


def test_a_subdirectory_of_a_checkout_is_not_taken_for_the_source(repo):
    # A package installed into a virtualenv inside a checkout is not that checkout's code.
    sub = repo / ".venv" / "lib"
    sub.mkdir(parents=True)
    state = git_state(sub)
    assert state["commit"] is None
    assert "not the top of a git work tree" in state["git_error"]


def test_a_checkout_without_commits_gives_a_reason(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    state = git_state(empty)
    assert state["commit"] is None and state["git_error"]


def test_command_line_is_quoted_as_a_shell_needs_it():
    assert command_line(["python", "-m", "train", "--lrs", "1e-3,3e-3", "--out", "my runs"]) == (
        "python -m train --lrs 1e-3,3e-3 --out 'my runs'"
    )


def test_default_command_line_is_the_interpreters():
    assert command_line() == command_line(sys.orig_argv)


def test_provenance_of_this_checkout_is_complete_and_json_able():
    p = provenance(["python", "-m", "benchmarks", "--quick"])
    assert json.loads(json.dumps(p)) == p
    assert Path(p["source_dir"]) == ROOT
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:  # tests run from a checkout (CI); an sdist has no .git
        assert p["commit"] == head.stdout.strip()
        assert isinstance(p["dirty"], bool)
    assert p["command"] == "python -m benchmarks --quick"
    assert set(p["versions"]) == {"python", "jax", "jaxlib", "flax", "optax", "numpy"}
    assert p["versions"]["jax"] and p["versions"]["numpy"]
    m = p["machine"]
    assert m["cpu_count"] >= 1 and m["cpu_model"] and m["memory_bytes"] > 0
    stamp = datetime.datetime.fromisoformat(p["timestamp_utc"])
    assert stamp.utcoffset() == datetime.timedelta(0)


def test_machine_records_the_backend_once_jax_has_started():
    import jax

    jax.numpy.zeros(1).block_until_ready()
    m = prov_mod.machine()
    assert m["backend"] == jax.default_backend()
    assert m["device_kind"] == jax.devices()[0].device_kind
    assert m["device_count"] == jax.device_count()


def test_describe_names_commit_dirty_flag_and_machine(repo):
    p = provenance(["python", "-m", "benchmarks"], root=repo)
    line = describe(p)
    assert p["commit"][:12] in line and "uncommitted" not in line
    assert p["machine"]["cpu_model"] in line and "`python -m benchmarks`" in line
    (repo / "code.py").write_text("x = 5\n")
    assert "with uncommitted changes" in describe(provenance(["x"], root=repo))
    assert "not recorded" in describe(None)
