#!/usr/bin/env python3
"""The guide's `python scripts/aim_audit_query.py`: a thin shim onto `aim audit query`."""

import sys

from aim_core.__main__ import main

sys.exit(main(["audit", "query", *sys.argv[1:]]))
