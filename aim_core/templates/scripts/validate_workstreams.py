#!/usr/bin/env python3
"""The guide's `python scripts/validate_workstreams.py`: a thin shim onto `aim validate`."""

import sys

from aim_core.__main__ import main

sys.exit(main(["validate", *sys.argv[1:]]))
