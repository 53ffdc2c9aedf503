"""tools/compare_trees.py: how two runs' results are found byte-identical, or not."""

from __future__ import annotations

import pandas as pd
from scripts import load_script

trees = load_script("tools/compare_trees.py")


def _tree(root, effects: pd.DataFrame, extra: dict[str, str] | None = None):
    (root / "stats").mkdir(parents=True)
    (root / "models" / "m").mkdir(parents=True)
    (root / "models" / "m" / "weights.bin").write_bytes(root.name.encode())
    effects.to_csv(root / "stats" / "effects.csv", index=False)
    pd.DataFrame({"item": ["a", "b"], "raw_output": ["A", "B"]}).to_parquet(root / "p.parquet")
    for name, text in (extra or {}).items():
        (root / name).write_text(text, encoding="utf-8")
    return root


EFFECTS = pd.DataFrame({"model": ["m", "m"], "effect": ["ft_gain", "cot_gain"], "estimate": [0.25, 0.5]})


def test_identical_trees_pass_and_weights_are_left_out(tmp_path, capsys):
    before, after = _tree(tmp_path / "before", EFFECTS), _tree(tmp_path / "after", EFFECTS)
    assert trees.main([str(before), str(after)]) == 0
    assert "2 of 2 files both trees hold are byte-identical" in capsys.readouterr().out


def test_a_changed_number_is_named_with_its_column_and_size(tmp_path, capsys):
    changed = EFFECTS.assign(estimate=[0.25, 0.75])
    before, after = _tree(tmp_path / "before", EFFECTS), _tree(tmp_path / "after", changed, {"new.csv": "x\n1\n"})
    assert trees.main([str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert (
        "DIFFERS stats/effects.csv" in out
        and "column estimate: 1 of 2 shared rows differ, largest numeric difference 0.25" in out
    )
    assert "ONLY AFTER new.csv" in out


def test_new_rows_and_expected_new_files_are_listed(tmp_path, capsys):
    grown = pd.concat([EFFECTS, pd.DataFrame({"model": ["m"], "effect": ["control_gain"], "estimate": [0.1]})])
    before, after = _tree(tmp_path / "before", EFFECTS), _tree(tmp_path / "after", grown, {"new.csv": "x\n1\n"})
    assert trees.main([str(before), str(after), "--expect-new", "new.csv"]) == 1
    out = capsys.readouterr().out
    assert "1 rows only after" in out and "control_gain" in out and "new new.csv" in out
