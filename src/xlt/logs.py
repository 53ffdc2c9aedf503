"""Where the library's log records go. Every module logs to its own logger
(`logging.getLogger(__name__)`, all under `xlt`) and sets no handler; the `xlt`
command sends them to the terminal (cli.main) and a job's to its log file
(stages.log_to), each line as `[HH:MM:SS] message`."""

from __future__ import annotations

import logging
from contextlib import contextmanager

# The library's log lines (the `xlt` logger's), in a job's log file and on the terminal.
LOG_FORMAT = logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S")


@contextmanager
def logging_to(handler: logging.Handler):
    """The library's log records (the `xlt` logger's, INFO and above) to `handler` alone
    while the context lasts, in LOG_FORMAT; not passed on to the root logger's handlers,
    which would write them a second time where stderr is the log file."""
    library = logging.getLogger("xlt")
    saved = library.handlers[:], library.level, library.propagate
    handler.setFormatter(LOG_FORMAT)
    library.handlers, library.propagate = [handler], False
    library.setLevel(logging.INFO)
    try:
        yield
    finally:
        library.handlers, library.propagate = saved[0], saved[2]
        library.setLevel(saved[1])
