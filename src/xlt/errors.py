"""The one exception type users see: a single line naming the file, row, key or model at fault."""


class XltError(Exception):
    """A problem with the user's input (config, data, model files), stated in one line."""
