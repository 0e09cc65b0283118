"""Run the command line with ``python -m csmile.cli``."""

import sys

from . import main

sys.exit(main())
