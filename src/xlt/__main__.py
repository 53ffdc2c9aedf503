"""`python -m xlt`: the `xlt` command, for jobs that run this checkout's code without installing it."""

import sys

from .bytecode import keep_bytecode

keep_bytecode()  # a process-wide setting, before the CLI and its stages import torch and transformers

from .cli import main  # noqa: E402

sys.exit(main())
