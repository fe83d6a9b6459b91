"""`python -m bnnembed ...`: the same command line as the `bnnembed` script."""

import sys

from .cli import main

sys.exit(main())
