"""The fine-tuning recipe of each model: what it learns from, apart from how the job
runs. One study compares models, so a difference in recipe (learning rate, schedule,
LoRA targets, amount of training) is a confound of any difference between them:
planning warns in one line, and the report lists every model's recipe."""

from __future__ import annotations

RECIPE_KEYS = ("learning_rate", "lr_scheduler", "warmup_ratio", "epochs", "max_steps", "max_length")
LORA_KEYS = ("r", "alpha", "dropout", "target_modules", "experts")


def examples_per_step(finetune: dict) -> int:
    """Examples per optimizer step: one micro-batch per process (one per GPU under
    accelerate), accumulated."""
    processes = finetune["resources"]["gpu"] if finetune["launcher"]["type"] == "accelerate" else 1
    return finetune["micro_batch_size"] * finetune["gradient_accumulation"] * processes


def model_recipe(entry: dict) -> dict:
    """A model's recipe from its validated config entry."""
    finetune = entry["finetune"]
    lora = finetune["lora"]
    targets = lora["target_modules"] if isinstance(lora["target_modules"], str) else "+".join(lora["target_modules"])
    return {
        **{key: finetune[key] for key in RECIPE_KEYS},
        "lora": f"r={lora['r']} alpha={lora['alpha']:g} dropout={lora['dropout']:g} {targets}"
        + (" +experts" if lora["experts"] else ""),
        "examples_per_step": examples_per_step(finetune),
    }


def recipes(config: dict) -> dict[str, dict]:
    return {name: model_recipe(entry) for name, entry in config["models"].items()}


def recipe_warning(config: dict) -> str | None:
    """One line naming each recipe setting that differs between the study's models."""
    table = recipes(config)
    differing = []
    for key in next(iter(table.values())):
        values = {name: recipe[key] for name, recipe in table.items()}
        if len(set(map(str, values.values()))) > 1:
            differing.append(f"{key} (" + ", ".join(f"{name} {value}" for name, value in values.items()) + ")")
    if not differing:
        return None
    return (
        "xlt: warning: the models train with different recipes, a confound of any comparison between them: "
        + "; ".join(differing)
    )
