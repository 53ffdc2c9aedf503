"""The one exception type users see: a single line naming the file, row, key or model at fault."""

import os


class XltError(Exception):
    """A problem with the user's input (config, data, model files), stated in one line."""


def verbose() -> bool:
    """XLT_VERBOSE=1 in the environment (or `xlt --verbose`): show the traceback of an
    XltError too, not only its line."""
    return os.environ.get("XLT_VERBOSE", "") not in ("", "0")
