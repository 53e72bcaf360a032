"""``aim run`` without click (aim_core.cli_run): it reads exactly the command lines
click would read the same way, leaves every other one to click, and ends like the
click command (same output, same exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from aim_core import cli_run
from aim_core.cli import cli

COMMON = {"config", "registry", "actor", "verbose", "quiet", "debug"}


def _click_options(command: click.Command) -> dict[str, click.Option]:
    return {
        flag: p
        for p in command.params
        if isinstance(p, click.Option)
        for flag in (*p.opts, *p.secondary_opts)
    }


def _same(
    table: dict, options: dict[str, click.Option], which: str, defaults: dict | None = None
) -> None:
    assert set(table) == set(options), (
        f"the {which} options of cli_run ({sorted(table)}) differ from click's "
        f"({sorted(options)}): add the option to cli_run.RUN_OPTIONS / GLOBAL_OPTIONS"
    )
    for flag, (param, kind, default) in table.items():
        opt = options[flag]
        assert opt.name == param, flag
        if kind == cli_run.FLAG:
            assert opt.is_flag and not opt.count, flag
        elif kind == cli_run.COUNT:
            assert opt.count, flag
        else:
            assert not opt.is_flag and not opt.count and not opt.multiple, flag
        if defaults is not None:
            assert defaults[param] == default, flag


def test_run_options_agree_with_the_click_command():
    run = cli.commands["run"]
    options = _click_options(run)
    defaults = run.make_context("run", ["a.json"]).params
    mine = {f: o for f, o in options.items() if o.name not in COMMON}
    _same(cli_run.RUN_OPTIONS, mine, "run", defaults)
    _same(cli_run.GLOBAL_OPTIONS, {f: o for f, o in options.items() if o.name in COMMON}, "global")
    group = {f: o for f, o in _click_options(cli).items() if o.name in COMMON}
    _same(cli_run.GLOBAL_OPTIONS, group, "group's")


def _click_reads(args: list[str]) -> tuple[dict, dict] | None:
    """What click makes of ``args``: run's parameters and the global options."""
    seen: dict = {}
    run = cli.commands["run"]
    original = run.callback
    run.callback = lambda **kw: seen.update(kw)
    try:
        ctx = cli.make_context("aim", list(args))
        with ctx:
            cli.invoke(ctx)
            meta = {k[4:]: v for k, v in ctx.meta.items() if k.startswith("aim.")}
    except (click.ClickException, click.exceptions.Exit):
        return None
    finally:
        run.callback = original
    return seen, meta


@pytest.mark.parametrize(
    "args",
    [
        ["run", "a.json"],
        ["run", "a.json", "b/"],
        ["run", "-j", "4", "a.json"],
        ["run", "-j4", "a.json", "--json"],
        ["run", "--jobs=64", "--dry-run", "a.json"],
        ["run", "a.json", "-j", "2", "b.json"],
        ["run", "--", "-j", "a.json"],
        ["-v", "run", "a.json"],
        ["-v", "run", "-vv", "a.json"],
        ["run", "-vq", "a.json"],
        ["--config", "c.yaml", "run", "--config=d.yaml", "a.json"],
        ["--actor", "me", "--registry", "r", "run", "a.json", "--debug"],
        ["run", "--actor", "-x", "a.json"],
        ["run", "-", "a.json"],
    ],
)
def test_reads_what_click_reads(args):
    got = cli_run.parse(args)
    want = _click_reads(args)
    assert got is not None and want is not None
    options, glob = got
    assert options == want[0]
    assert {k: v for k, v in glob.items() if v not in (None, False, 0)} == want[1]


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", "--help"],
        ["run", "-h"],
        ["--version"],
        ["run", "-j", "0", "a.json"],
        ["run", "-j", "65", "a.json"],
        ["run", "-j", "x", "a.json"],
        ["run", "-j"],
        ["run", "--jobs=", "a.json"],
        ["run", "--dry-run=yes", "a.json"],
        ["run", "--nope", "a.json"],
        ["run", "-vj4", "a.json"],
        ["status"],
        ["validate", "run"],
        ["--nope", "run", "a.json"],
    ],
)
def test_leaves_the_rest_to_click(args):
    assert cli_run.parse(args) is None


def test_same_output_and_exit_code_as_click(repo, fake, aim):
    fake("aider", stdout="edited\n", write_argv_files="x = 1\n")
    ws = repo / "ws.json"
    ws.write_text(
        json.dumps(
            {
                "id": "ws-fast",
                "files_scope": ["src/a.py"],
                "capability": "code_generation",
                "capability_payload": {"prompt": "p", "files": ["src/a.py"]},
            }
        )
    )
    env = {"AIM_LOAD_PLUGINS": "aider"}
    fast = aim("run", "--dry-run", str(ws), env=env)
    assert fast.returncode == 0, fast.stderr
    slow = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from aim_core.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))",
            "run",
            "--dry-run",
            str(ws),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**_env(), **env},
    )
    assert (slow.returncode, slow.stdout, slow.stderr) == (0, fast.stdout, fast.stderr)
    bad = repo / "bad.json"
    bad.write_text("{}")
    fast = aim("run", str(bad), env=env)
    slow = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from aim_core.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))",
            "run",
            str(bad),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**_env(), **env},
    )
    assert fast.returncode == slow.returncode == 2
    assert fast.stderr == slow.stderr and fast.stderr.startswith("Error: ")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_run_starts_without_click(repo, aim):
    """The point of it: `aim run` never imports click (nor builds the command tree)."""
    probe = (
        "import sys, runpy; sys.argv = ['aim'] + sys.argv[1:]\n"
        "from aim_core.__main__ import main\n"
        "code = main(sys.argv[1:])\n"
        "print('click' in sys.modules, 'aim_core.cli' in sys.modules, code, file=sys.stderr)\n"
    )
    ws = repo / "workstreams" / "staging_test"
    first = sorted(Path(ws).glob("*.json"))[0]
    proc = subprocess.run(
        [sys.executable, "-c", probe, "run", "--dry-run", str(first)],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.stderr.strip().splitlines()[-1] == "False False 0", proc.stderr


@pytest.mark.parametrize(
    "args,problem",
    [
        (["run", "--json", "bad.json"], "capability_payload.timeout_ms: expected an integer"),
        (["run", "--json", "missing.json"], "missing.json: file not found"),
        (["run", "--dry-run", "--json", "bad.json"], "capability_payload.timeout_ms"),
        (["audit", "report", "--json", "--since", "garbage"], "'garbage' is not a date"),
        (["audit", "query", "--format", "json", "--since", "x"], "'x' is not a date"),
        (["run", "--json", "-j", "abc", "bad.json"], "'abc' is not a valid integer"),
        (["run", "--json"], "Missing argument 'PATHS...'"),
        (["audit", "query", "--format=json", "--verification", "maybe"], "'maybe' is not one of"),
        (["audit", "query", "--format=json", "--until", "x"], "'x' is not a date"),
    ],
)
def test_json_output_gets_the_error_as_json_too(repo, aim, args, problem):
    """A script reading ``--json`` gets one object for an error that ends the command
    (stdout), while the person reads the message (stderr); exit 2 either way."""
    (repo / "bad.json").write_text(
        '{"id": "x", "capability": "code_generation",'
        ' "capability_payload": {"timeout_ms": "sixty"}}'
    )
    r = aim(*args, cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stdout.splitlines()
    data = json.loads(line)
    assert data["exit_code"] == 2
    assert problem in data["error"] + " ".join(data["problems"])
    assert "Error: " in r.stderr and problem in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["status", "--json"], ["-q", "status", "--json"]])
def test_status_json_gets_a_config_error_as_json_too(repo, aim, args):
    """``aim status --json`` alone is answered without click: the same JSON error."""
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(cfg.read_text() + "\ndefault_timeout_ms: sixty\n")
    r = aim(*args, cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stdout.splitlines()
    data = json.loads(line)
    assert data["exit_code"] == 2 and data["field"] == "default_timeout_ms", data


def test_without_json_an_error_leaves_stdout_empty(repo, aim):
    r = aim("run", "missing.json", cwd=repo)
    assert r.returncode == 2 and r.stdout == ""
    r = aim("run", "--", "--json", cwd=repo)  # a file named --json: not the option
    assert r.returncode == 2 and r.stdout == "", r.stdout
