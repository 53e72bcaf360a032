#!/usr/bin/env python3
"""The guide's `python scripts/aim_status.py`: a thin shim onto `aim status`."""

import sys

from aim_core.__main__ import main

sys.exit(main(["status", *sys.argv[1:]]))
