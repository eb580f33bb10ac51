"""`python -m apy_runway.cli`: the same entry point as `apy-runway`."""

import sys

from apy_runway.cli.main import main

sys.exit(main())
