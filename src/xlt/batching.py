"""Batching and padding of token rows, one place for inference and fine-tuning alike.

Rows are planned longest first (`plan_waves`, `plan_batches`) and padded on the left
(`pad`), so that every row's last real token sits in the last column: the logits a
decoding step or the answer-only loss reads are those of the last positions. Position
ids count real tokens only (`positions`), so a padded row sees the positions it would
see alone.
"""

from __future__ import annotations

# A prefill chunk is closed before its padding would pass this share of its tokens: a
# padded position costs as much as a real one in the prompt pass, and prompts of one
# item differ by 6x in tokens across scripts (English vs Amharic under SmolLM2's
# tokenizer). On a GPU a wide pass is worth some padding; on a CPU it is not (16 mixed
# prompts of SmolLM2: 8.1 s one by one, 10.3 s in chunks padded up to 25%), so there
# only prompts of equal length share a pass.
GPU_MAX_PADDING_SHARE = 0.25
CPU_MAX_PADDING_SHARE = 0.0


def max_padding_share(model) -> float:
    return CPU_MAX_PADDING_SHARE if model.device.type == "cpu" else GPU_MAX_PADDING_SHARE


def longest_first(lengths: list[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def plan_waves(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Row indices in waves of `batch_size`, longest rows first: the rows that are
    decoded together. Depends only on the lengths and the batch size, so a resumed
    job recomputes exactly the waves an uninterrupted one would (see inference/shards.py)."""
    order = longest_first(lengths)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def plan_batches(lengths: list[int], batch_size: int, padding_limit: float = GPU_MAX_PADDING_SHARE) -> list[list[int]]:
    """Row indices in chunks of at most `batch_size`, longest first, a chunk closed
    before a shorter row would take its padding past `padding_limit`."""
    plan: list[list[int]] = []
    for index in longest_first(lengths):
        batch = plan[-1] if plan else None
        if batch and len(batch) < batch_size:
            tokens = sum(lengths[i] for i in batch) + lengths[index]
            if 1 - tokens / (lengths[batch[0]] * (len(batch) + 1)) <= padding_limit:
                batch.append(index)
                continue
        plan.append([index])
    return plan


def pad(rows: list[list[int]], fill: int, side: str = "left"):
    """(values, attention mask) as tensors of shape (rows, longest row), each row's
    values on the `side` given and `fill` elsewhere."""
    import torch

    width = max(len(values) for values in rows)
    padded = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, values in enumerate(rows):
        span = slice(width - len(values), width) if side == "left" else slice(0, len(values))
        padded[row, span] = torch.tensor(values, dtype=torch.long)
        mask[row, span] = 1
    return padded, mask


def positions(attention_mask):
    """Position ids that count a row's real tokens only (left padding sits at 0)."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)
