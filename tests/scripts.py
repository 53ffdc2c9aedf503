"""Scripts of the checkout that are not modules of xlt (bench/, tools/), loaded by path."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """The script at `relative` (from the checkout's root) as a module, registered under its
    file name (dataclasses look their module up)."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
