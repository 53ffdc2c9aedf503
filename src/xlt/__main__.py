"""`python -m xlt`: the `xlt` command, for jobs that run this checkout's code without installing it."""

import sys

from .cli import main

sys.exit(main())
