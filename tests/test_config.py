import copy

import pytest
import yaml

from xlt.config import load_config, validate_config
from xlt.errors import XltError
from xlt.languages import control_languages, language_table, related_languages


def test_default_config_validates_and_fills_defaults(study_config):
    smol = study_config["models"]["smollm2-135m"]
    assert smol["finetune"]["lora"]["target_modules"] == "all-linear"
    assert smol["inference"]["batch_size"] == "auto"
    assert study_config["stats"]["equivalence_margin"] == 0.05


def test_paper_config_validates(repo):
    paper = load_config(repo / "config" / "paper.yaml")
    assert len(paper["models"]) == 7
    assert paper["data"]["source"] == "hub"


def test_language_groups_follow_config(study_config):
    """The default's two sources (Arabic, Persian) in the study-wide view; each source's
    own view has the other source among its targets."""
    assert study_config["source_languages"] == ["arb_Arab", "pes_Arab"]
    assert related_languages(study_config) == ["heb_Hebr", "amh_Ethi", "mlt_Latn"]
    assert control_languages(study_config) == ["tur_Latn", "eng_Latn", "urd_Arab"]
    assert [code for code, lang in language_table(study_config, "arb_Arab").items() if lang.group == "control"] == [
        "tur_Latn",
        "eng_Latn",
        "pes_Arab",
        "urd_Arab",
    ]
    table = language_table(study_config)
    assert table["arb_Arab"].group == "source" and table["pes_Arab"].group == "source"
    assert table["mlt_Latn"].script == "Latn" and table["mlt_Latn"].group == "related"


def test_changing_related_family_changes_groups(study_config):
    config = copy.deepcopy(study_config)
    config["source_languages"] = ["arb_Arab"]
    config["related_families"] = ["Indo-European"]
    assert related_languages(config) == ["eng_Latn", "pes_Arab", "urd_Arab"]
    assert "heb_Hebr" in control_languages(config)


def _raw(repo):
    return yaml.safe_load((repo / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(unknown_key=1), "config: unknown_key: unknown key; allowed here: data, languages,"),
        (lambda c: c.update(source_languages=["xxx_Latn"]), "source_languages: 'xxx_Latn' is not among languages"),
        (lambda c: c.update(related_families=["Bantu"]), "related_families: no language of family 'Bantu'"),
        (lambda c: c["models"]["smollm2-135m"].pop("package"), "models.smollm2-135m"),
        (
            lambda c: c["models"]["smollm2-135m"].update(inference={"batch_size": -1}),
            "models.smollm2-135m.inference.batch_size: -1 is not allowed: -1 is less than the minimum of "
            "1; or -1 is not one of ['auto']",
        ),
        (
            lambda c: c["models"]["smollm2-135m"].update(finetune={"resources": {"gpu_model": "h100"}}),
            "models.smollm2-135m.finetune.resources: gpu_model 'h100' needs gpu: 1 or more (it is 0)",
        ),
        (
            lambda c: c["models"]["smollm2-135m"].update(inference={"resources": {"gpu": 1, "gpu_model": "h100:2"}}),
            "models.smollm2-135m.inference.resources.gpu_model: 'h100:2' is not allowed: GPU type, as the "
            "cluster's gres.conf names it",
        ),
    ],
)
def test_config_mistakes_stop_with_one_line(repo, mutate, message):
    config = _raw(repo)
    mutate(config)
    with pytest.raises(XltError) as error:
        validate_config(config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
