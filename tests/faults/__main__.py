"""`python -m tests.faults`: the fault-injection suite (tests/faults/run.py)."""

import sys

from tests.faults.run import main

sys.exit(main())
