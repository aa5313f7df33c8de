"""`make bench-gateway`: see bench/README.md."""

import sys

from bench.gateway._cli import main

sys.exit(main())
