"""`aim --version` against a bare `python -c pass` of the same venv (budget: 3x)."""

from __future__ import annotations

import argparse

from _common import AIM, PYTHON, Result, base_env, cli_main, interleaved, median, time_argv

BUDGET = 3.0


def run(args: argparse.Namespace) -> list[Result]:
    env = base_env()
    n = 11 if args.quick else 31
    times = interleaved(
        {
            "aim": lambda: time_argv([AIM, "--version"], env=env),
            "python": lambda: time_argv([PYTHON, "-c", "pass"], env=env),
        },
        n,
        warmup=2,
    )
    aim, base = median(times["aim"]), median(times["python"])
    return [
        Result(
            key="version",
            what="aim --version",
            aim=aim * 1000,
            base=base * 1000,
            unit="ms",
            budget=f"<= {BUDGET:g}x python -c pass",
            ok=aim <= BUDGET * base,
            notes=[f"{n} runs each, interleaved; the `aim` console script of the venv"],
        )
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
