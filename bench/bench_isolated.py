"""The cost of an isolated copy of the repository (aim_core/isolated.py) on a large
repository: 10 000 tracked files with uncommitted edits, and a git-ignored `.venv/`
of 100 000 files (linked into the copy, and fingerprinted).

Rows, each a ratio measured in the same run (interleaved medians):
- making and discarding an `IsolatedWorkspace` (a `git clone --shared` + the user's
  index checked out + the work tree's own state copied over) against making and
  discarding the in-place workspace's snapshot (`InPlaceWorkspace`);
- checking what changed after the tool (`changes()` + `outside()`), isolated against
  in place;
- for the design choice, the same copy made as a `git worktree add --detach` (with
  the same population) against the clone: the clone is chosen because a worktree
  shares refs, config and hooks with the user's repository.

For information (no budget yet): a race pays the first row once per candidate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import REPO_DIR, Result, cli_main, interleaved, log, median

sys.path.insert(0, str(REPO_DIR))

from aim_core.isolated import IsolatedWorkspace
from aim_core.scope import Scope
from aim_core.workspace import InPlaceWorkspace

TRACKED = 10_000
IGNORED = 100_000
SCOPE = ["src/d00000/f000.py", "src/d00001/"]


def _fill(root: Path, prefix: str, count: int, per_dir: int = 50) -> None:
    for n in range(count):
        d = root / prefix / f"d{n // per_dir:05d}"
        if n % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n % per_dir:03d}.py").write_text(f"x = {n}\n" * 10)


def _repo(base: Path) -> Path:
    repo = base / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    _fill(repo, "src", TRACKED)
    (repo / ".gitignore").write_text(".venv/\n")
    _fill(repo, ".venv/lib", IGNORED)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "big"], check=True)
    # the user's uncommitted work: edits, a staged file, untracked files
    for n in range(0, 200, 10):
        (repo / f"src/d{n:05d}/f001.py").write_text("edited\n")
    (repo / "src/d00002/f002.py").write_text("staged\n")
    subprocess.run([*git, "add", "src/d00002/f002.py"], check=True)
    for n in range(20):
        (repo / f"new{n}.txt").write_text("untracked\n")
    return repo


def _timer(make: Callable[[Path], object], discard: Callable[[object], None], base: Path):
    counter = iter(range(1_000_000))

    def timer() -> float:
        d = base / f"w{next(counter)}"
        start = time.perf_counter()
        ws = make(d)
        discard(ws)
        elapsed = time.perf_counter() - start
        shutil.rmtree(d, ignore_errors=True)
        return elapsed

    return timer


def _check_timer(ws: object) -> Callable[[], float]:
    def timer() -> float:
        start = time.perf_counter()
        ws.changes()  # type: ignore[attr-defined]
        ws.outside()  # type: ignore[attr-defined]
        return time.perf_counter() - start

    return timer


def _worktree_copy(repo: Path, d: Path) -> Path:
    """The same copy as a linked worktree (for the design comparison)."""
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-q", "--detach", "--no-checkout", str(d)],
        check=True,
    )
    gitdir = Path(
        subprocess.run(
            ["git", "-C", str(d), "rev-parse", "--absolute-git-dir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shutil.copyfile(repo / ".git" / "index", gitdir / "index")
    workers = f"checkout.workers={os.cpu_count() or 1}"
    subprocess.run(
        ["git", "-C", str(d), "-c", workers, "checkout-index", "-a", "-f", "-q", "-u"], check=True
    )
    return d


def _worktree_remove(repo: Path) -> Callable[[object], None]:
    def remove(d: object) -> None:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(d)], check=True
        )

    return remove


def run(args: argparse.Namespace) -> list[Result]:
    n = 3 if args.quick else 7
    base = Path(tempfile.mkdtemp(prefix="aim-bench-isolated-"))
    try:
        log(f"building a repository: {TRACKED} tracked files, {IGNORED} in an ignored .venv/")
        repo = _repo(base)
        scope = Scope(repo, SCOPE)
        state = base / "state"
        state.mkdir()

        def isolated(d: Path) -> IsolatedWorkspace:
            return IsolatedWorkspace(repo, scope, d)

        def in_place(d: Path) -> InPlaceWorkspace:
            return InPlaceWorkspace(repo, scope, d)

        def clone_populated(d: Path) -> Path:
            return isolated(d).root

        log(f"create + discard: isolated copy vs in-place snapshot, {n} runs each")
        made = interleaved(
            {
                "isolated": _timer(isolated, lambda w: w.discard(), state),  # type: ignore[attr-defined]
                "in_place": _timer(in_place, lambda w: w.discard(), state),  # type: ignore[attr-defined]
                "worktree": _timer(
                    lambda d: _worktree_copy(repo, d), _worktree_remove(repo), state
                ),
            },
            n,
        )
        probe = isolated(state / "probe")
        linked = list(probe.linked)
        in_place_ws = in_place(state / "probe-in-place")
        log(f"changes() + outside() after the tool: isolated vs in place, {n} runs each")
        checked = interleaved(
            {"isolated": _check_timer(probe), "in_place": _check_timer(in_place_ws)}, n
        )
        probe.discard()
        in_place_ws.discard()
    finally:
        subprocess.run(["git", "-C", str(base / "repo"), "worktree", "prune"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    iso, inp, wt = median(made["isolated"]), median(made["in_place"]), median(made["worktree"])
    c_iso, c_inp = median(checked["isolated"]), median(checked["in_place"])
    return [
        Result(
            key="isolated_create",
            what=f"isolated copy, create+discard ({TRACKED // 1000}k tracked, "
            f"{IGNORED // 1000}k ignored; in-place snapshot = base)",
            aim=iso * 1000,
            base=inp * 1000,
            unit="ms",
            budget="for information",
            ok=True,
            notes=[
                f"linked into the copy: {', '.join(linked) or 'nothing'}; cpus: {os.cpu_count()}"
            ],
        ),
        Result(
            key="isolated_check",
            what="changes()+outside() after the tool, isolated (in place = base)",
            aim=c_iso * 1000,
            base=c_inp * 1000,
            unit="ms",
            budget="for information",
            ok=True,
            notes=["isolated walks the copy and every entry of the linked .venv/"],
        ),
        Result(
            key="isolated_clone_vs_worktree",
            what="isolated copy as a clone (git worktree add = base)",
            aim=iso * 1000,
            base=wt * 1000,
            unit="ms",
            budget="for information",
            ok=True,
            notes=["a worktree shares refs, config and hooks with the user's repository"],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
