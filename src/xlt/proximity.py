"""How close a target language is to a source language: genealogy, script, geography.

Genealogical proximity is the share of the Glottolog classification path (family down
to the language, data/languages.csv) that two languages have in common: the length of
their common prefix over the length of the longer path. It is 0 across families, 1 for
one language in two scripts, and grows as the common ancestor lies deeper: this is the
shared-path form of the genealogical distance of URIEL (Littell et al. 2017, "URIEL and
lang2vec", EACL), computed on Glottolog 4.0's tree. Paths differ in how finely Glottolog
divides a branch, so the measure orders pairs within a branch better than it compares
depths across families. Geographic distance is the great-circle (haversine) distance
between Glottolog's coordinates.
"""

from __future__ import annotations

import math

import pandas as pd

from .languages import Language, LanguageMetadata, language_metadata, source_languages
from .paths import GENERATED_PROMPTS, PROXIMITY_COLUMNS

EARTH_RADIUS_KM = 6371.0088  # the mean Earth radius (IUGG)
# The effects.csv rows of the continuous design (xlt.stats.proximity), named here so that
# the report reads them without importing the statistics.
SLOPE = "proximity_slope"
INTERACTION = "proximity_interaction"
MIN_TARGETS = 5  # a slope's fit: an intercept, proximity, two covariates and a residual


def genealogical_proximity(first: LanguageMetadata, second: LanguageMetadata) -> float:
    """The common prefix of the two classification paths over the longer path's length."""
    shared = 0
    for a, b in zip(first.classification, second.classification):
        if a != b:
            break
        shared += 1
    return shared / max(len(first.classification), len(second.classification))


def deepest_common_clade(first: LanguageMetadata, second: LanguageMetadata) -> str:
    """The name of the deepest node both paths share ("" across families)."""
    name = ""
    for a, b, a_name in zip(first.classification, second.classification, first.classification_names):
        if a != b:
            break
        name = a_name
    return name


def distance_km(first: LanguageMetadata, second: LanguageMetadata) -> float:
    """Great-circle distance between the languages' Glottolog coordinates."""
    lat1, lon1, lat2, lon2 = map(math.radians, (first.latitude, first.longitude, second.latitude, second.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def proximity_table(study: dict) -> pd.DataFrame:
    """One row per source x target (every configured language other than the source):
    genealogical proximity, the deepest common clade, same script (the config's scripts)
    and distance; the Glottolog measures are NaN for a language outside xlt's metadata."""
    known = language_metadata()
    rows = []
    for source in source_languages(study):
        for target, meta in study["languages"].items():
            if target == source:
                continue
            source_meta, target_meta = known.get(source), known.get(target)
            genealogical, clade, distance = math.nan, "", math.nan
            if source_meta is not None and target_meta is not None:
                genealogical = genealogical_proximity(source_meta, target_meta)
                clade = deepest_common_clade(source_meta, target_meta)
                distance = distance_km(source_meta, target_meta)
            rows.append(
                {
                    "source": source,
                    "target": target,
                    "source_glottocode": source_meta.glottocode if source_meta else "",
                    "target_glottocode": target_meta.glottocode if target_meta else "",
                    "genealogical": genealogical,
                    "common_clade": clade,
                    "same_script": meta["script"] == study["languages"][source]["script"],
                    "distance_km": distance,
                }
            )
    return pd.DataFrame(rows, columns=list(PROXIMITY_COLUMNS))


def measured(languages: dict[str, Language]) -> tuple[LanguageMetadata | None, list[str]]:
    """The source's metadata (None unless exactly one language is the source and has
    it) and the targets with metadata, in config order: what a slope is fitted on."""
    known = language_metadata()
    sources = [code for code, lang in languages.items() if lang.group == "source"]
    source = known.get(sources[0]) if len(sources) == 1 else None
    return source, [code for code, lang in languages.items() if lang.is_target and code in known] if source else []


def slope_fits(source: LanguageMetadata | None, targets: list[str]) -> bool:
    """Whether a slope can be fitted on `targets`: enough of them, at more than one
    genealogical proximity to the source (Turkish among the default's languages has no
    relative: every target is at 0, and no slope is estimable)."""
    metadata = language_metadata()
    return (
        source is not None
        and len(targets) >= MIN_TARGETS
        and len({genealogical_proximity(source, metadata[code]) for code in targets}) > 1
    )


def slopes_tested(languages: dict[str, Language]) -> list[tuple[str, str]]:
    """The (prompt, effect) of the proximity slopes one source's comparison tests on a
    complete tree (xlt.stats.proximity.slope_rows): one per generated prompt."""
    return [(prompt, SLOPE) for prompt in GENERATED_PROMPTS] if slope_fits(*measured(languages)) else []
