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


def language_table(config: dict) -> dict[str, Language]:
    """Code -> Language, in config order, with the group (source/related/control) resolved."""
    source = config["source_language"]
    related_families = set(config["related_families"])
    table = {}
    for code, meta in config["languages"].items():
        if code == source:
            group = "source"
        elif meta["family"] in related_families:
            group = "related"
        else:
            group = "control"
        table[code] = Language(code, meta["family"], meta["script"], group, meta.get("template") or code)
    return table


def related_languages(config: dict) -> list[str]:
    return [code for code, lang in language_table(config).items() if lang.group == "related"]


def control_languages(config: dict) -> list[str]:
    return [code for code, lang in language_table(config).items() if lang.group == "control"]
