"""The one test per model that carries the verdict (`stats.primary`), resolved from the
config alone, never from which rows the data happen to give: exactly one row per model
is the primary test whatever the sources, and a value this study cannot have stops when
Snakemake plans, with the values it can have.

`auto` is the source x target interaction under the direct prompt where the study has
one (sources inside and outside the related families), else, with one source, its
relatedness under the direct prompt. Several sources without an interaction (all inside
the related families, or all outside) have no automatic primary test. A named test is
`prompt/effect` (a row of effects.csv); with several sources, one source's rows are
named `prompt/effect@source`, the interaction's `prompt/relatedness_interaction`.
Light to import, and never importing the statistics: planning reads it, and the report
(which reads INTERACTION) must not rerun when the statistics' code changes. What one
source's comparison tests (stats.effects_tested) is given to it by its callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import XltError
from .languages import Language, interaction_sides, language_table, source_languages

# stats.effects_tested: the (prompt, effect) rows with a p-value of one source's comparison.
EffectsTested = Callable[[dict[str, Language]], list[tuple[str, str]]]

# The design's test with several sources (xlt.stats.sources): the related-minus-control gain
# after a related source minus the same after an unrelated one.
INTERACTION = "relatedness_interaction"
# The prompts xlt.stats.sources computes the interaction under.
INTERACTION_PROMPTS = ("direct", "cot")
# What `auto` is: the first that the study has.
AUTO_PRIMARY = (("direct", INTERACTION), ("direct", "relatedness"))


@dataclass(frozen=True)
class PrimaryTest:
    """A (prompt, effect) row of effects.csv and the source whose rows hold it ("" for
    the rows across sources: the interaction)."""

    prompt: str
    effect: str
    source: str

    @property
    def name(self) -> str:
        return f"{self.prompt}/{self.effect}"


def has_interaction(study: dict) -> bool:
    return len(source_languages(study)) > 1 and all(interaction_sides(study))


def allowed_primary(study: dict, effects_tested: EffectsTested) -> list[str]:
    """Every value `stats.primary` may take in this study, `auto` first where it exists."""
    sources = source_languages(study)
    values = ["auto"] if len(sources) == 1 or has_interaction(study) else []
    if has_interaction(study):
        values += [f"{prompt}/{INTERACTION}" for prompt in INTERACTION_PROMPTS]
    for source in sources:
        suffix = f"@{source}" if len(sources) > 1 else ""
        values += [f"{prompt}/{effect}{suffix}" for prompt, effect in effects_tested(language_table(study, source))]
    return values


def resolve_primary(
    study: dict, setting: str, effects_tested: EffectsTested, where: str = "stats.primary"
) -> PrimaryTest:
    """The primary test `setting` names in `study` (a config), or one line saying why it
    names none and listing the values that do."""
    sources = source_languages(study)
    if setting == "auto":
        if len(sources) == 1:
            return PrimaryTest(*AUTO_PRIMARY[-1], sources[0])
        if has_interaction(study):
            return PrimaryTest(*AUTO_PRIMARY[0], "")
        reason = (
            f"the sources {', '.join(sources)} are all "
            f"{'inside' if interaction_sides(study)[0] else 'outside'} related_families, so there is no "
            f"{INTERACTION} to be the primary test and each source has its own; name one source's test"
        )
    else:
        test, _, source = setting.partition("@")
        prompt, _, effect = test.partition("/")
        if len(sources) == 1 and not source:
            source = sources[0]
        test_source = "" if effect == INTERACTION and not source else source
        allowed = allowed_primary(study, effects_tested)
        if setting in allowed:
            return PrimaryTest(prompt, effect, test_source)
        owners = [other for other in sources if f"{test}@{other}" in allowed]
        if len(sources) > 1 and not source and owners:
            reason = (
                f"with {len(sources)} source languages each has its own {test}: name one source's, as "
                f"{test}@{owners[0]}"
            )
        elif len(sources) == 1 and "@" in setting:
            reason = "with one source language a test is named without @source"
        else:
            reason = "not a test of this study"
    raise XltError(f"{where}: {setting!r}: {reason}; allowed: {', '.join(allowed_primary(study, effects_tested))}")
