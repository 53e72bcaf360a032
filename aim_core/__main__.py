"""``aim`` and ``python -m aim_core``: answer ``--version`` at once, a warm
``aim status`` from its snapshot and ``aim run`` without click; else run the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aim`` command; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from aim_core._version import __version__

        sys.stdout.write(f"aim {__version__}\n")
        return 0
    import aim_core
    from aim_core.plugin_output import guard_stdout

    aim_core.COMMAND_LINE = True

    guard_stdout()  # what a plugin prints never reaches aim's stdout (its JSON)
    if args in (["status"], ["status", "--json"]):
        from aim_core.status_snapshot import try_status

        rc = try_status(args[1:])
        if rc is None:
            from aim_core.status import main_without_click

            rc = main_without_click(args[1:])
        if rc is not None:
            return rc
    if "run" in args:  # the common `aim run PATHS` starts without click
        from aim_core.cli_run import main_without_click

        rc = main_without_click(args)
        if rc is not None:
            return rc
    from aim_core.cli import run_cli

    return run_cli(args)


def entry(*, served: bool = True) -> None:
    """The ``aim`` console script: run, flush, and leave without the interpreter's
    teardown (tens of milliseconds of module and thread clean-up for nothing).
    With ``served``, ``aim run`` goes to aim's run server when one can take it
    (:mod:`aim_core.resident_client`); ``python -m aim_core`` runs everything itself
    (its import path starts with the current directory: a server per directory)."""
    import os

    _open_closed_streams()
    code = None
    if served and "run" in sys.argv[1:]:
        from aim_core.resident_client import run

        code = run(sys.argv[1:])
    if code is None:
        code = main()
        if served and "aim_core.resident_client" in sys.modules:
            sys.modules["aim_core.resident_client"].start_pending()

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more can be said
        pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(code)


def _open_closed_streams() -> None:
    """``aim ... >&-`` (or ``2>&-``, ``<&-``): the closed descriptor becomes /dev/null, as
    a daemon's would, so that what aim writes is lost but the work and its exit code
    are not (and no file opened later takes descriptor 1 or 2)."""
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
            continue  # opened since Python started: not ours to replace
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the stream


if __name__ == "__main__":
    entry(served=False)
