"""One line of a JSON-lines file as a JSON value, or one line saying why not."""

from __future__ import annotations

import json

from .errors import XltError


def parse_json_line(line: str, where: str):
    """`json.loads(line)`, its line end dropped (else an error's position would be on
    a line 2); else one line: `where` (file: line N) and why, for invalid JSON, nesting
    deeper than Python's parser goes, an integer of more digits than Python converts."""
    try:
        return json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as error:
        reason = f"{error.msg} at column {error.colno}"
    except RecursionError:
        reason = "nested too deeply to read"
    except ValueError as error:
        reason = str(error).split(";")[0]
    raise XltError(f"{where}: not valid JSON ({reason})")
