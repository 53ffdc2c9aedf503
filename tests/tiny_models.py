"""Tiny random-initialised models for tests: one dense (Llama) with a chat template,
one Mixture-of-Experts (Qwen3-MoE) without (and, on request, Qwen3 and DeepSeek-V3,
the paper's other architectures), both over a byte-level tokenizer built in
code, so no test needs a download. Deterministic for a given seed.

    python tests/tiny_models.py OUT_DIR     # writes OUT_DIR/tiny-dense, OUT_DIR/tiny-moe
"""

from __future__ import annotations

import sys
from pathlib import Path

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]


def byte_tokenizer(chat: bool):
    """Byte-level BPE with no merges: every UTF-8 byte is a token, so any script
    tokenizes (long, but tiny models do not mind)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    for token in SPECIALS:
        vocab[token] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>" if chat else "<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIALS,
    )
    if chat:
        tokenizer.chat_template = CHATML
    return tokenizer


def tiny_config(kind: str, vocab_size: int):
    from transformers import DeepseekV3Config, LlamaConfig, Qwen3Config, Qwen3MoeConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    if kind == "dense":
        return LlamaConfig(intermediate_size=64, **common)
    if kind == "moe":
        return Qwen3MoeConfig(
            intermediate_size=64, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2, head_dim=8, **common
        )
    if kind == "qwen3":
        return Qwen3Config(intermediate_size=64, head_dim=8, **common)
    if kind == "deepseek-v3":
        # multi-head latent attention with low ranks that are not multiples of 16 (the
        # FP8 tests' scale blocks), one dense layer then one of 4 routed experts
        return DeepseekV3Config(
            **{**common, "num_key_value_heads": 4},
            intermediate_size=64,
            moe_intermediate_size=16,
            n_routed_experts=4,
            n_shared_experts=1,
            num_experts_per_tok=2,
            n_group=1,
            topk_group=1,
            first_k_dense_replace=1,
            q_lora_rank=24,
            kv_lora_rank=20,
            qk_rope_head_dim=4,
            qk_nope_head_dim=8,
            v_head_dim=8,
        )
    raise ValueError(f"unknown tiny model kind {kind!r}; allowed: dense, moe, qwen3, deepseek-v3")


def build_tiny_model(out_dir: str | Path, kind: str, chat: bool, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    tokenizer = byte_tokenizer(chat)
    config = tiny_config(kind, len(tokenizer))
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_all(root: str | Path) -> dict[str, Path]:
    root = Path(root)
    return {
        "tiny-dense": build_tiny_model(root / "tiny-dense", "dense", chat=True),
        "tiny-moe": build_tiny_model(root / "tiny-moe", "moe", chat=False),
    }


if __name__ == "__main__":
    for name, path in build_all(sys.argv[1] if len(sys.argv) > 1 else ".test/models").items():
        print(f"{name}: {path}")
