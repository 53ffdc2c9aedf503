"""Language metadata: family, script and the role each language plays in the study.

Which language is the source and which families count as related is configuration,
so the same code answers the question for any language family.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS = ("source", "related", "control")


@dataclass(frozen=True)
class Language:
    code: str
    family: str
    script: str
    group: str
    template: str

    @property
    def is_target(self) -> bool:
        return self.group != "source"


def source_languages(config: dict) -> list[str]:
    """The fine-tuning languages: `source_languages`, or the one `source_language`."""
    return list(config.get("source_languages") or [config["source_language"]])


def control_sources(config: dict) -> list[str]:
    """The sources with a format-only control adapter (finetune.format_control): "first"
    is the first source language; none where the config has no such key (a study's
    settings from before the control)."""
    setting = config.get("finetune", {}).get("format_control", [])
    return source_languages(config)[:1] if setting == "first" else list(setting)


def language_table(config: dict, source: str | None = None) -> dict[str, Language]:
    """Code -> Language, in config order, with the group (source/related/control) resolved.

    With one source a language is related when it is of `related_families`. With several,
    for one `source` a language is related when it is of that source's family (of
    `related_families` for a source in them), and every other language is a target,
    other sources included. With several sources and none named, every source is in
    group source and the related targets are those of `related_families` (the
    study-wide view of tables and plots).
    """
    sources = source_languages(config)
    if source is None and len(sources) == 1:
        source = sources[0]
    if len(sources) == 1 or source is None or config["languages"][source]["family"] in config["related_families"]:
        related_families = set(config["related_families"])
    else:
        related_families = {config["languages"][source]["family"]}
    table = {}
    for code, meta in config["languages"].items():
        if code == source or (source is None and code in sources):
            group = "source"
        elif meta["family"] in related_families:
            group = "related"
        else:
            group = "control"
        table[code] = Language(code, meta["family"], meta["script"], group, meta.get("template") or code)
    return table


def interaction_targets(study: dict) -> tuple[list[str], list[str]]:
    """(related, control) targets shared by every source: no source is among them."""
    sources = set(source_languages(study))
    families = set(study["related_families"])
    targets = [code for code in study["languages"] if code not in sources]
    return [code for code in targets if study["languages"][code]["family"] in families], [
        code for code in targets if study["languages"][code]["family"] not in families
    ]


def interaction_sides(study: dict) -> tuple[list[str], list[str], list[str], list[str]]:
    """(sources of the related families, sources outside them, related targets, control
    targets) of the source x target interaction; it exists when none of the four is empty."""
    sources = source_languages(study)
    inside = [source for source in sources if study["languages"][source]["family"] in study["related_families"]]
    return inside, [source for source in sources if source not in inside], *interaction_targets(study)


def related_languages(config: dict) -> list[str]:
    return [code for code, lang in language_table(config).items() if lang.group == "related"]


def control_languages(config: dict) -> list[str]:
    return [code for code, lang in language_table(config).items() if lang.group == "control"]
