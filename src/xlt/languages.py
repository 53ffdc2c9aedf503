"""Language metadata: family, script and the role each language plays in the study.

Which language is the source and which families count as related is configuration,
so the same code answers the question for any language family. The genealogy of every
Belebele variant (Glottocode, Glottolog's family and classification path, coordinates)
ships as data/languages.csv, built by tools/build_languages.py (docs/languages.md); a
configured language takes its family and script from it unless the config gives them.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib.resources import as_file, files

from .errors import XltError

GROUPS = ("source", "related", "control")
METADATA_FILE = "data/languages.csv"


@dataclass(frozen=True)
class LanguageMetadata:
    """One Belebele variant as Glottolog 4.0 classifies it. `classification` is the
    path of Glottocodes from the family down to the language itself; two script
    variants of one language (arb_Arab, arb_Latn) share it."""

    flores_code: str
    iso639_3: str
    glottolog_iso639_3: str
    glottocode: str
    name: str
    family: str
    classification: tuple[str, ...]
    classification_names: tuple[str, ...]
    script: str
    latitude: float
    longitude: float


@functools.cache
def language_metadata() -> dict[str, LanguageMetadata]:
    """FLORES code -> metadata, for every Belebele variant."""
    with as_file(files("xlt").joinpath(METADATA_FILE)) as path, open(path, encoding="utf-8", newline="") as handle:
        return {
            row["flores_code"]: LanguageMetadata(
                row["flores_code"],
                row["iso639_3"],
                row["glottolog_iso639_3"],
                row["glottocode"],
                row["name"],
                row["family"],
                tuple(row["classification"].split("/")),
                tuple(row["classification_names"].split("/")),
                row["script"],
                float(row["latitude"]),
                float(row["longitude"]),
            )
            for row in csv.DictReader(handle)
        }


def fill_language_metadata(languages: dict, source: str = "config") -> None:
    """Give each configured language (code -> its config entry) the family and script
    of its metadata where the entry leaves them out; a language outside the table must
    state both."""
    known = language_metadata()
    for code, meta in languages.items():
        missing = [key for key in ("family", "script") if key not in meta]
        if not missing:
            continue
        if code not in known:
            raise XltError(
                f"{source}: languages.{code}: no {' or '.join(missing)}, and {code} is not a Belebele "
                "variant whose metadata xlt ships; give both"
            )
        meta.setdefault("family", known[code].family)
        meta.setdefault("script", known[code].script)


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
