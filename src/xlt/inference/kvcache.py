"""The one place xlt touches transformers' private KV-cache internals.

The engine (engine.py, forward.py) joins, copies and pre-sizes caches in ways
transformers' public API does not offer: it reads and replaces a cache's `layers`,
subclasses `cache_utils.DynamicLayer`, and sets a sliding-window layer's
`cumulative_length`. These change between transformers releases without notice, so
they live here only, behind a small API:

- `check_transformers()`: stop where the installed release is outside the tested range;
- `check_transformers_internals()`: stop, naming the class or attribute, where the
  installed release lacks what this module relies on (tests/test_kvcache.py runs it);
- `cache_keyword(model)`: the name of a model's cache argument;
- `copy_rows(cache, rows)`: a cache of some rows of another, which stays as it was;
- `join_rows(parts, width)`: one cache over rows of several, right-aligned;
- `merge_for_decoding(caches, width, new_tokens)`: several caches as one batch, in
  buffers sized once for the whole decoding (`BufferedLayer`).

Every function here leaves the arithmetic to transformers' own layers: the keys and
values are copied, padded and concatenated, never recomputed.
"""

from __future__ import annotations

import copy
import functools
import inspect
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import XltError

if TYPE_CHECKING:
    import torch
    from transformers.cache_utils import Cache

# The transformers releases this module was tested with (constraints.txt pins one of
# them; pyproject.toml and envs/models.yaml ask for the same).
TESTED_TRANSFORMERS = ">=5.25,<5.26"


def check_transformers(version: str | None = None) -> None:
    """Stop, in one line, where the installed transformers (or `version`) is outside the
    tested range."""
    from importlib.metadata import version as installed

    from packaging.specifiers import SpecifierSet

    version = version or installed("transformers")
    if not SpecifierSet(TESTED_TRANSFORMERS).contains(version):
        raise XltError(
            f"transformers {version}: the inference engine is tested with transformers{TESTED_TRANSFORMERS} only "
            "(it builds on transformers' private cache classes); install the tested stack: pip install -c "
            "constraints.txt -e ."
        )


# The parameters of the methods this module calls or overrides, as the tested release
# has them (BufferedLayer overrides `update` and `batch_select_indices`; `copy_rows`
# calls `batch_select_indices`; `BufferedLayer.__init__` calls DynamicLayer's with none).
RELIED_ON_SIGNATURES = {
    "DynamicLayer.__init__": ["self", "kwargs"],
    "DynamicLayer.update": ["self", "key_states", "value_states", "args", "kwargs"],
    "DynamicLayer.batch_select_indices": ["self", "indices"],
    "DynamicLayer.get_seq_length": ["self"],
    "DynamicLayer.get_mask_sizes": ["self", "query_length"],
    "DynamicSlidingWindowLayer.__init__": ["self", "sliding_window", "kwargs"],
    "Cache.batch_select_indices": ["self", "indices"],
}


def check_transformers_internals() -> None:
    """Stop, in one line naming the transformers version and the class or attribute,
    where the installed transformers lacks something this module relies on: the cache
    classes, the methods it overrides or calls (with their parameters), and the
    attributes it reads and writes on a cache and its layers."""
    from importlib.metadata import version as installed

    import torch

    def fail(what: str) -> NoReturn:
        raise XltError(
            f"transformers {installed('transformers')}: xlt/inference/kvcache.py relies on {what}; adapt "
            "it to this release"
        )

    try:
        from transformers import cache_utils
    except ImportError as error:
        fail(f"transformers.cache_utils ({error})")
    classes = {}
    for name in ("Cache", "DynamicCache", "DynamicLayer", "DynamicSlidingWindowLayer"):
        if not inspect.isclass(getattr(cache_utils, name, None)):
            fail(f"the class transformers.cache_utils.{name}, which is gone")
        classes[name] = getattr(cache_utils, name)
    if not issubclass(classes["DynamicSlidingWindowLayer"], classes["DynamicLayer"]):
        fail("DynamicSlidingWindowLayer being a DynamicLayer, which it no longer is")
    for qualified, expected in RELIED_ON_SIGNATURES.items():
        owner, method = qualified.split(".")
        function = getattr(classes[owner], method, None)
        if not callable(function):
            fail(f"{qualified}, which is gone")
        found = list(inspect.signature(function).parameters)
        if found != expected:
            fail(f"{qualified}({', '.join(expected)}), which now takes ({', '.join(found)})")
    plain = classes["DynamicLayer"]()
    for attribute in ("keys", "values", "is_initialized", "is_sliding"):
        if not hasattr(plain, attribute):
            fail(f"the DynamicLayer attribute {attribute!r}, which is gone")
    sliding = classes["DynamicSlidingWindowLayer"](sliding_window=4)
    if not hasattr(sliding, "cumulative_length"):
        fail("the DynamicSlidingWindowLayer attribute 'cumulative_length', which is gone")
    cache = classes["DynamicCache"]()
    cache.update(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1), 0)
    if not isinstance(getattr(cache, "layers", None), list) or not isinstance(cache.layers[0], plain.__class__):
        fail("DynamicCache.layers, a list of DynamicLayer, which it no longer is")


def cache_keyword(model) -> str:
    """The name of the KV-cache argument and output field: transformers 5.x renamed
    `past_key_values` to `cache`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def copy_rows(cache: Cache, rows: torch.Tensor) -> Cache:
    """A cache holding the given batch rows (a row may repeat) of `cache`, which stays
    as it was: the layers' row selection replaces their tensors instead of writing
    into them."""
    copied = copy.copy(cache)
    layers: list[Any] = [copy.copy(layer) for layer in cache.layers]
    for layer in layers:
        layer.batch_select_indices(rows)
    copied.layers = layers
    return copied


def _layers(cache: Cache) -> list[Any]:
    """A cache's layers, whatever their kind (transformers types them as a union of
    mixins; the callers check the kind they need)."""
    return cache.layers


def _dynamic_layer_classes() -> tuple[type, ...]:
    """The layer kinds the join and merge know: plain and sliding-window dynamic layers
    (not linear attention, indexers, static or quantized layers)."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    return DynamicLayer, DynamicSlidingWindowLayer


def join_rows(parts: list[tuple[Cache, int, int]], width: int) -> Cache | None:
    """One cache over copies of rows of several (`parts`: cache, row, how many columns
    that cache's attention mask has), each row right-aligned in `width` columns with
    zeros before it (the caller masks them out). None where a layer is not a plain or
    sliding-window dynamic layer holding every column (a sliding layer past its window
    has dropped some)."""
    import torch

    kinds = _dynamic_layer_classes()
    for cache, _, columns in parts:
        for layer in _layers(cache):
            if type(layer) not in kinds or layer.keys.shape[2] != columns:
                return None

    def aligned(tensor, row):
        return torch.nn.functional.pad(tensor[row : row + 1], (0, 0, width - tensor.shape[2], 0))

    first = parts[0][0]
    layers = []
    for index, layer in enumerate(_layers(first)):
        joined = copy.copy(layer)
        joined.keys = torch.cat([aligned(_layers(cache)[index].keys, row) for cache, row, _ in parts])
        joined.values = torch.cat([aligned(_layers(cache)[index].values, row) for cache, row, _ in parts])
        if hasattr(joined, "cumulative_length"):
            joined.cumulative_length = width
        layers.append(joined)
    cache = copy.copy(first)
    cache.layers = layers
    return cache


def merge_for_decoding(caches: list[Cache], width: int, new_tokens: int) -> Cache | None:
    """The caches (of batches of rows) as one batch, in the order given: each cache's
    columns right-aligned in buffers of `width` plus `new_tokens` columns, written in
    place as decoding goes (`BufferedLayer`), and the columns a cache lacks left zero
    (the caller masks them out). The first cache object is reused. None where a layer
    is not an initialised plain or sliding-window dynamic layer."""
    kinds = _dynamic_layer_classes()
    layers = [_layers(cache) for cache in caches]
    if any(type(layer) not in kinds or not layer.is_initialized for chunk in layers for layer in chunk):
        return None
    buffered_layer = _buffered_layer_class()
    sizes = [chunk[0].keys.shape[0] for chunk in layers]
    merged_layers = []
    for parts in zip(*layers):
        buffers = []
        for kind in ("keys", "values"):
            first = getattr(parts[0], kind)
            buffer = first.new_zeros((sum(sizes), first.shape[1], width + new_tokens, first.shape[3]))
            start = 0
            for size, layer in zip(sizes, parts):
                stored = getattr(layer, kind)
                buffer[start : start + size, :, width - stored.shape[2] : width] = stored
                start += size
            buffers.append(buffer)
        merged_layers.append(buffered_layer(*buffers, width, parts[0].is_sliding))
    cache = caches[0]
    cache.layers = merged_layers
    return cache


@functools.cache
def _buffered_layer_class() -> Any:
    """Defined on first use: transformers is imported lazily, as everywhere in xlt."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A layer's keys and values in buffers sized once for the whole decoding:
        each step writes its position in place, where DynamicLayer concatenates,
        copying the layer's whole cache at every step."""

        def __init__(self, key_buffer, value_buffer, length: int, is_sliding: bool):
            super().__init__()
            self.key_buffer, self.value_buffer, self.length = key_buffer, value_buffer, length
            # keeps the model's mask choice per layer; the whole history is kept, and
            # the sliding-window mask hides what a sliding layer would have dropped
            self.is_sliding = is_sliding
            self.is_initialized = True
            self.device = key_buffer.device
            self._view()

        def _view(self) -> None:
            self.keys = self.key_buffer[:, :, : self.length]
            self.values = self.value_buffer[:, :, : self.length]

        def update(self, key_states, value_states, *args, **kwargs):
            added = key_states.shape[-2]
            if self.length + added > self.key_buffer.shape[2]:
                # a forced answer's phrase and labels after a continuation that used the
                # whole budget: the buffers grow once, by what is missing
                grow = (0, 0, 0, self.length + added - self.key_buffer.shape[2])
                self.key_buffer = torch.nn.functional.pad(self.key_buffer, grow)
                self.value_buffer = torch.nn.functional.pad(self.value_buffer, grow)
            self.key_buffer[:, :, self.length : self.length + added] = key_states
            self.value_buffer[:, :, self.length : self.length + added] = value_states
            self.length += added
            self._view()
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._view()

    return BufferedLayer
