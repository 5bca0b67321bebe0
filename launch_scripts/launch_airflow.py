#!/usr/bin/env python3
"""Trigger an Airflow workflow of managed tasks and follow it (thin wrapper).

The logic lives in :mod:`lute.launch.launcher` (console script
``lute-launch-airflow``); see ``docs/launch.md``.
"""

import sys
from pathlib import Path

# run from a checkout without installing: the package is one level up
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lute.launch.launcher import main

if __name__ == "__main__":
    sys.exit(main())
