#!/usr/bin/env python3
"""The guide's `python scripts/run_workstream.py`: a thin shim onto `aim run`."""

import sys

from aim_core.__main__ import main

sys.exit(main(["run", *sys.argv[1:]]))
