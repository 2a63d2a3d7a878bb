"""bench/results_io.py: the provenance a results file records."""
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import results_io  # noqa: E402


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_git_rev_marks_a_tree_no_commit_holds(tmp_path):
    """A measurement in a checkout with changed tracked files names its commit with
    ``+changes``; the results the benchmark itself writes (bench/results) and untracked files
    do not count."""
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "rtl.py").write_text("a = 1\n")
    (tmp_path / "bench" / "results" / "x.md").write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert results_io.git_rev(tmp_path) == head
    (tmp_path / "bench" / "results" / "x.md").write_text("new\n")
    (tmp_path / "scratch.txt").write_text("untracked\n")
    assert results_io.git_rev(tmp_path) == head
    (tmp_path / "rtl.py").write_text("a = 2\n")
    assert results_io.git_rev(tmp_path) == head + "+changes"
    assert results_io.git_rev(tmp_path / "nowhere") == "unknown"
