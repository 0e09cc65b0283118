"""Run the command line with ``python -m csmile``."""

import sys

from .cli import main

sys.exit(main())
