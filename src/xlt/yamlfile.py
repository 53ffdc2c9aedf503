"""Reading the YAML files a user writes (configs, prompt templates): safely, and with one
line naming the file when it cannot be read. Only plain values: no tags, anchors,
aliases, duplicate keys or keys that are not text."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import XltError


class _Refused(yaml.YAMLError):
    """Valid YAML that xlt's files never need: the line says what and where."""

    def __init__(self, what: str, mark):
        super().__init__(f"line {mark.line + 1}: {what}")


class StrictLoader(yaml.SafeLoader):
    """safe_load, less what a settings file never needs and an attacker uses: explicit
    tags (`!!python/name:os.system`, `!!binary`, any `!tag`), anchors and aliases (an
    alias bomb expands to gigabytes when the settings are copied or hashed), duplicate
    keys (the last would win without a word) and keys that are not text (`1:`, `on:`,
    which name nothing and would become folder names)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"alias *{event.anchor}: anchors and aliases are not allowed; write the value out", event.start_mark
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                f"anchor &{event.anchor}: anchors and aliases are not allowed; write the value out", event.start_mark
            )
        if getattr(event, "tag", None) not in (None, "!"):
            tag = event.tag.replace("tag:yaml.org,2002:", "!!")
            raise _Refused(f"tag {tag}: tags are not allowed (no Python objects); write plain values", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if not isinstance(key, str):
                    raise _Refused(
                        f"key {key_node.value!r} is read as {type(key).__name__}, not text; quote it",
                        key_node.start_mark,
                    )
                if key in seen:
                    raise _Refused(f"key {key!r} appears twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path, what: str):
    """A YAML file's content as plain values (StrictLoader), or one line saying why not."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=StrictLoader)
    except FileNotFoundError:
        raise XltError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise XltError(f"{path}: {what} is a folder, not a file") from None
    except UnicodeDecodeError as error:
        raise XltError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); save the file as UTF-8"
        ) from None
    except _Refused as error:
        raise XltError(f"{path}: {error}") from None
    except RecursionError:
        raise XltError(
            f"{path}: not valid YAML for xlt: nested too deeply to read (settings need a few levels)"
        ) from None
    except ValueError as error:  # a value PyYAML cannot build: an integer of thousands of digits, 2001-02-30
        raise XltError(f"{path}: not valid YAML: {str(error).split(';')[0]}") from None
    except yaml.YAMLError as error:
        raise XltError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
