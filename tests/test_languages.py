"""The language metadata xlt ships (every Belebele variant) and the proximity measures."""

import pytest
from scripts import load_script

from xlt.config import read_config_file, validate_config
from xlt.languages import language_metadata
from xlt.proximity import deepest_common_clade, distance_km, genealogical_proximity, proximity_table


def _belebele() -> list[str]:
    """The 122 FLORES-200 codes of Belebele (lm-evaluation-harness's belebele group), as
    the script that builds the table lists them."""
    return load_script("tools/build_languages.py").BELEBELE


BELEBELE = _belebele()

# Checked by hand (docs/languages.md): Glottolog's published code for each, and its family.
HAND_CHECKED = {
    "arb_Arab": ("stan1318", "Afro-Asiatic"),
    "heb_Hebr": ("hebr1245", "Afro-Asiatic"),
    "amh_Ethi": ("amha1245", "Afro-Asiatic"),
    "mlt_Latn": ("malt1254", "Afro-Asiatic"),
    "tur_Latn": ("nucl1301", "Turkic"),
    "eng_Latn": ("stan1293", "Indo-European"),
    "pes_Arab": ("west2369", "Indo-European"),
    "urd_Arab": ("urdu1245", "Indo-European"),
    "hin_Deva": ("hind1269", "Indo-European"),
    "eus_Latn": ("basq1248", "Basque"),
    "zho_Hans": ("mand1415", "Sino-Tibetan"),
    "jpn_Jpan": ("nucl1643", "Japonic"),
}


def test_every_belebele_variant_has_metadata():
    table = language_metadata()
    assert len(BELEBELE) == 122
    assert sorted(table) == sorted(BELEBELE)
    for code, meta in table.items():
        assert meta.family and meta.glottocode and meta.classification, code
        assert -90 <= meta.latitude <= 90 and -180 <= meta.longitude <= 180, code


def test_codes_are_consistent():
    """FLORES code -> ISO 639-3 (its first part) -> Glottocode (the end of the
    classification path); a macrolanguage code names the individual language Glottolog
    classifies; script variants of one language share its Glottocode."""
    table = language_metadata()
    macrolanguages = {"est": "ekk", "grn": "gug", "zho": "cmn"}
    for code, meta in table.items():
        iso, script = code.split("_")
        assert meta.flores_code == code and meta.iso639_3 == iso and meta.script == script
        assert meta.glottolog_iso639_3 == macrolanguages.get(iso, iso), code
        assert meta.classification[-1] == meta.glottocode, code
        assert meta.classification_names[0] == meta.family, code
        assert len(meta.classification) == len(meta.classification_names), code
    by_iso = {}
    for meta in table.values():
        by_iso.setdefault(meta.iso639_3, set()).add(meta.glottocode)
    assert all(len(codes) == 1 for codes in by_iso.values())
    assert table["arb_Latn"].glottocode == table["arb_Arab"].glottocode
    for code, (glottocode, family) in HAND_CHECKED.items():
        assert (table[code].glottocode, table[code].family) == (glottocode, family), code


def test_the_classification_orders_pairs_it_settles():
    table = language_metadata()

    def proximity(a, b):
        return genealogical_proximity(table[a], table[b])

    assert proximity("heb_Hebr", "arb_Arab") > proximity("tur_Latn", "arb_Arab") == 0
    assert proximity("urd_Arab", "hin_Deva") > proximity("urd_Arab", "pes_Arab") > 0
    assert proximity("arb_Arab", "arb_Latn") == 1
    assert proximity("heb_Hebr", "arb_Arab") == proximity("arb_Arab", "heb_Hebr")
    assert deepest_common_clade(table["heb_Hebr"], table["arb_Arab"]) == "Central Semitic"
    assert deepest_common_clade(table["tur_Latn"], table["arb_Arab"]) == ""


def test_distance_is_the_great_circle_distance():
    table = language_metadata()
    assert distance_km(table["eng_Latn"], table["eng_Latn"]) == 0
    # Glottolog places English at 53N 1W and Hindi at 25N 77E: about 7,030 km apart.
    assert distance_km(table["eng_Latn"], table["hin_Deva"]) == pytest.approx(7030, rel=0.01)
    assert distance_km(table["heb_Hebr"], table["arb_Arab"]) < distance_km(table["tur_Latn"], table["zho_Hans"])


def test_configured_languages_take_family_and_script_from_the_metadata():
    config = validate_config(read_config_file("config/config.yaml"))
    languages = config["languages"]
    assert languages["tur_Latn"] == {**languages["tur_Latn"], "family": "Turkic", "script": "Latn"}
    assert languages["urd_Arab"]["family"] == "Indo-European"
    assert languages["heb_Hebr"]["family"] == "Semitic"  # the config's own, the branch related_families names
    table = proximity_table(config)
    assert len(table) == 2 * 7
    row = table[(table["source"] == "arb_Arab") & (table["target"] == "urd_Arab")].iloc[0]
    assert row["genealogical"] == 0 and bool(row["same_script"]) and row["distance_km"] > 1000
    row = table[(table["source"] == "pes_Arab") & (table["target"] == "urd_Arab")].iloc[0]
    assert 0 < row["genealogical"] < 1 and row["common_clade"] == "Indo-Iranian"
    assert not table["genealogical"].isna().any()


def test_the_study_across_belebele_config_lists_every_variant():
    config = validate_config(read_config_file("config/belebele-all.yaml"))
    assert sorted(config["languages"]) == sorted(BELEBELE)
    assert {code for code, meta in config["languages"].items() if meta["family"] == "Semitic"} == {
        code for code, meta in language_metadata().items() if "Semitic" in meta.classification_names
    }
    assert len(proximity_table(config)) == 2 * 121


@pytest.mark.plans
def test_snakemake_plans_the_study_across_every_belebele_language(repo, tmp_path):
    """`snakemake -n --configfile config/belebele-all.yaml`: the paper's 7 models x 2
    sources fine-tuned and one format-only control each (finetune.format_control's
    default, the first source), 7 x 4 predict jobs each over 122 languages, one
    proximity table."""
    from snakemake_runs import planned_rules, shipped_study

    study = shipped_study(tmp_path)
    plan = planned_rules(repo / "Snakefile", study, study / "config" / "belebele-all.yaml")
    assert (
        plan["finetune"] == 14
        and plan["finetune_control"] == 7
        and plan["predict"] == 7 * 4
        and plan["proximity"] == 1
        and plan["compare"] == 1
        and plan["report"] == 1
    )
