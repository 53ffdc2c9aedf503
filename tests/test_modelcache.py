"""prepare_model keeps a GGUF's conversion across runs and checkouts (xlt.modelcache): the
second preparation copies the same bytes instead of converting, and a damaged or absent
entry means a conversion, never a wrong model."""

import logging
from pathlib import Path

import pytest

from xlt import modelcache, models
from xlt.models import ModelSpec, prepare_model


@pytest.fixture
def conversions(monkeypatch, tmp_path) -> list[Path]:
    """Each call of the (stand-in) conversion; it writes a config and a weights file."""
    calls = []

    def convert(gguf, out_dir):
        calls.append(gguf)
        (out_dir / "config.json").write_text('{"model_type": "llama"}')
        (out_dir / "model.safetensors").write_bytes(gguf.read_bytes() * 3)

    monkeypatch.setattr(models, "convert_gguf", convert)
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
    return calls


def _gguf(tmp_path, content=b"GGUF-weights") -> ModelSpec:
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    return ModelSpec(name="m", path=str(path))


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_second_preparation_copies_the_cached_conversion(conversions, tmp_path):
    spec = _gguf(tmp_path)
    prepare_model(spec, tmp_path / "one")
    prepare_model(spec, tmp_path / "two")
    assert len(conversions) == 1
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert not (tmp_path / "two" / modelcache.RECORD).exists()


def test_another_file_is_another_entry(conversions, tmp_path):
    prepare_model(_gguf(tmp_path, b"first"), tmp_path / "one")
    prepare_model(_gguf(tmp_path, b"second"), tmp_path / "two")
    assert len(conversions) == 2
    assert (tmp_path / "two" / "model.safetensors").read_bytes() == b"second" * 3


def test_a_damaged_entry_is_converted_again(conversions, tmp_path, caplog):
    spec = _gguf(tmp_path)
    prepare_model(spec, tmp_path / "one")
    (cached,) = (tmp_path / "cache").glob("*/model.safetensors")
    cached.write_bytes(b"damaged")
    caplog.set_level(logging.INFO, logger="xlt")
    prepare_model(spec, tmp_path / "two")
    assert len(conversions) == 2
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert any("unusable" in message for message in caplog.messages)


def test_off_keeps_nothing(conversions, tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_CACHE_DIR", "off")
    spec = _gguf(tmp_path)
    prepare_model(spec, tmp_path / "one")
    prepare_model(spec, tmp_path / "two")
    assert len(conversions) == 2


def test_an_unwritable_cache_costs_a_conversion_not_the_job(conversions, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XLT_CACHE_DIR", str(blocker / "cache"))
    caplog.set_level(logging.INFO, logger="xlt")
    prepare_model(_gguf(tmp_path), tmp_path / "one")
    assert (tmp_path / "one" / "model.safetensors").is_file()
    assert any("not kept" in message for message in caplog.messages)
