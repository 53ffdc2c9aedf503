"""The settings of each workflow stage, one frozen dataclass per stage.

A job's settings are built from the validated config in one place (xlt.jobs.stage_settings),
travel as the `--settings` JSON of its rule's `xlt <stage>` command (a rule param: a
change reruns the job), are parsed back here by the command and passed unchanged to the
stage function (xlt.stages), which takes them and its files as keyword arguments. The
JSON is the dataclass's fields in order; a field marked `omitted_when_none` is left out
while it is None, so that a config without it keeps the settings (and the jobs) it had.
This module imports nothing of xlt but its errors: every stage's code fingerprint
(xlt.fingerprint) includes it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import XltError

Settings = TypeVar("Settings", bound="StageSettings")
# A field left out of the JSON while it is None (staged folders where staging applies).
OMITTED = {"omitted_when_none": True}


@dataclass(frozen=True)
class StageSettings:
    """What one job computes from; `STAGES` names the stages that read it."""

    STAGES: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The settings as the JSON value of the rule's param (fields in order)."""
        return {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if not (item.metadata.get("omitted_when_none") and getattr(self, item.name) is None)
        }

    def to_json(self) -> str:
        """The `--settings` argument: the same text for the same config, so an unchanged
        job is not rerun."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[Settings], value: object, stage: str) -> Settings:
        """The settings of `stage` from a parsed `--settings`, or one line naming the
        keys it lacks or does not know."""
        if not isinstance(value, dict):
            raise XltError(f"--settings: expected {stage}'s settings as a JSON object")
        names = [item.name for item in dataclasses.fields(cls)]
        required = [item.name for item in dataclasses.fields(cls) if item.default is dataclasses.MISSING]
        missing = [name for name in required if name not in value]
        if missing:
            raise XltError(
                f"--settings: lacks {', '.join(missing)}; {stage}'s settings have the keys "
                f"{', '.join(names)} (as xlt.jobs.stage_settings builds them)"
            )
        unknown = [key for key in value if key not in names]
        if unknown:
            raise XltError(
                f"--settings: unknown key {', '.join(unknown)} for {stage}; its settings have the keys "
                f"{', '.join(names)}"
            )
        return cls(**value)


@dataclass(frozen=True)
class PrepareDataSettings(StageSettings):
    """`data`: the config's data block; `all_test`: fine-tuning data comes from
    elsewhere, so every item is a test item; `staged`: the Hub dataset's staged folder."""

    STAGES: ClassVar[tuple[str, ...]] = ("prepare_data",)
    data: dict[str, Any]
    langs: list[str]
    all_test: bool
    staged: str | None = field(default=None, metadata=OMITTED)


@dataclass(frozen=True)
class PrepareTrainingSettings(StageSettings):
    """`finetune`: the config's finetune block less format_control; `staged`: source ->
    the staged folder of its Hub training set."""

    STAGES: ClassVar[tuple[str, ...]] = ("prepare_training",)
    finetune: dict[str, Any]
    sources: list[str]
    seed: int
    staged: dict[str, str] | None = field(default=None, metadata=OMITTED)


@dataclass(frozen=True)
class PrepareControlSettings(StageSettings):
    STAGES: ClassVar[tuple[str, ...]] = ("prepare_control",)
    seed: int


@dataclass(frozen=True)
class ProvenanceSettings(StageSettings):
    """`config`: the config less how jobs run (xlt.jobs.computed_config)."""

    STAGES: ClassVar[tuple[str, ...]] = ("provenance",)
    config: dict[str, Any]


@dataclass(frozen=True)
class PrepareModelSettings(StageSettings):
    """Where a model's weights come from (exactly one of id, path, package); `staged`:
    the Hub model's staged folder; `converted`: its bfloat16 conversion (xlt.fp8)."""

    STAGES: ClassVar[tuple[str, ...]] = ("prepare_model", "stage_model")
    id: str | None
    revision: str | None
    path: str | None
    package: str | None
    trust_remote_code: bool | None
    staged: str | None = field(default=None, metadata=OMITTED)
    converted: str | None = field(default=None, metadata=OMITTED)

    def entry(self) -> dict[str, Any]:
        """The model's source as a config entry (what xlt.models.ModelSpec reads)."""
        return {key: getattr(self, key) for key in ("id", "revision", "path", "package", "trust_remote_code")}

    def hub_id(self, name: str) -> str:
        """The Hub id of model `name`, which staging downloads, or one line saying it has none."""
        if not self.id:
            raise XltError(f"--settings: model {name} has no Hub id; only Hub models are staged")
        return self.id


@dataclass(frozen=True)
class StageDatasetSettings(StageSettings):
    """A Hub data set the study stages: its id and revision."""

    STAGES: ClassVar[tuple[str, ...]] = ("stage_dataset",)
    id: str
    revision: str | None


@dataclass(frozen=True)
class AdapterSettings(StageSettings):
    """What an adapter is learned from: the model's source (its config entry less the
    stage blocks, in the JSON as top-level keys) and its finetune block less how the job
    runs (xlt.jobs.NOT_LEARNED). Fine-tuning and merging read the same."""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "merge")
    source: dict[str, Any]
    finetune: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.source, "finetune": self.finetune}

    @classmethod
    def from_dict(cls, value: object, stage: str) -> AdapterSettings:
        if not isinstance(value, dict) or not isinstance(value.get("finetune"), dict):
            raise XltError(
                f"--settings: lacks finetune; {stage}'s settings are the model's config as a JSON object "
                "with its finetune block "
                "(as xlt.jobs.stage_settings builds them)"
            )
        return cls(source={key: item for key, item in value.items() if key != "finetune"}, finetune=value["finetune"])

    def entry(self) -> dict[str, Any]:
        """The model's config entry with its finetune block (what xlt.models.ModelSpec reads)."""
        return self.to_dict()


@dataclass(frozen=True)
class PredictSettings(StageSettings):
    """`model`: the model's source with its inference block (less resources);
    `templates`: language -> its prompt template file; `prompts`: prompt -> its
    `max_new_tokens` and `scoring`."""

    STAGES: ClassVar[tuple[str, ...]] = ("predict",)
    model: dict[str, Any]
    templates: dict[str, str]
    prompts: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class StudySettings(StageSettings):
    """What the model-free stages read (xlt.jobs.study_settings): a change elsewhere
    reruns none of them."""

    STAGES: ClassVar[tuple[str, ...]] = ("score", "compare", "proximity")
    languages: dict[str, Any]
    source_languages: list[str]
    related_families: list[str]
    stats: dict[str, Any]
    prompts: dict[str, Any]
    finetune: dict[str, Any]

    def study(self) -> dict[str, Any]:
        """The settings as the config-shaped dict the statistics read (a whole config
        would do as well)."""
        return self.to_dict()


@dataclass(frozen=True)
class ReportSettings(StudySettings):
    """The study settings and each model's fine-tuning recipe (xlt.recipes)."""

    STAGES: ClassVar[tuple[str, ...]] = ("report",)
    recipes: dict[str, Any] | None = field(default=None, metadata=OMITTED)


SETTINGS: dict[str, type[StageSettings]] = {
    stage: kind
    for kind in (
        PrepareDataSettings,
        PrepareTrainingSettings,
        PrepareControlSettings,
        ProvenanceSettings,
        PrepareModelSettings,
        StageDatasetSettings,
        AdapterSettings,
        PredictSettings,
        StudySettings,
        ReportSettings,
    )
    for stage in kind.STAGES
}


def parse_settings(text: str, kind: type[Settings], stage: str) -> Settings:
    """A `--settings` argument as the settings of `stage`, or one line saying why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise XltError(f"--settings: not JSON ({error.msg})") from None
    return kind.from_dict(value, stage)
