"""Broken model files, pickled weights and a GPU job on a machine without CUDA stop the
job with one line (in its log and on the terminal, no traceback unless XLT_VERBOSE=1),
and leave no artifact behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from faultlib import files_under

from xlt.errors import XltError
from xlt.settings import PrepareModelSettings
from xlt.stages import log_to, prepare_model


def _local(path) -> PrepareModelSettings:
    """The settings of a model read from a local folder."""
    return PrepareModelSettings(id=None, revision=None, path=str(path), package=None, trust_remote_code=False)


def _damaged_copy(tiny_models, tmp_path, damage):
    folder = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_models["tiny-dense"], folder)
    return damage(folder)


def _remove_weights(folder):
    (folder / "model.safetensors").unlink()
    return folder


def _pickle_weights(folder):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    return _remove_weights(folder)


def _truncate_weights(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


def _index_a_missing_shard(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    weight_map = {name: "model.safetensors" for name in names}
    weight_map[names[-1]] = "model-00002-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def _remove_config(folder):
    (folder / "config.json").unlink()
    return folder


def _html_as_gguf(folder):
    path = folder.parent / "model.gguf"
    path.write_text("<html><body>Rate limit exceeded</body></html>")
    return path


def _truncated_gguf(folder):
    import gguf

    path = folder.parent / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((64, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    path.write_bytes(path.read_bytes()[:-100])
    return path


CASES = {
    "no weight file": (
        _remove_weights,
        "model tiny: no safetensors weights in {path} (found none); save the model with safe_serialization=True",
    ),
    "pickled weights only": (
        _pickle_weights,
        "model tiny: no safetensors weights in {path} (found only pytorch_model.bin, pickled weights xlt "
        "does not load); save the model with safe_serialization=True",
    ),
    "truncated weight file": (
        _truncate_weights,
        "model tiny: weight file {path}/model.safetensors is incomplete or damaged (Error while "
        "deserializing header: incomplete metadata, file not fully covered)",
    ),
    "shard listed but missing": (
        _index_a_missing_shard,
        "model tiny: weight file {path}/model-00002-of-00002.safetensors is missing "
        "(model.safetensors.index.json lists it)",
    ),
    "folder without config.json": (
        _remove_config,
        "model tiny: path {path} is neither a .gguf file nor a folder with config.json",
    ),
    "a .gguf that is not a GGUF": (
        _html_as_gguf,
        "{path}: not a GGUF file (it does not start with the GGUF magic bytes)",
    ),
    "truncated GGUF": (
        _truncated_gguf,
        "{path}: incomplete or damaged GGUF file (its header and tensors cannot be read back); download it again",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_broken_model_stops_prepare_model_in_one_line(tiny_models, tmp_path, capfd, monkeypatch, case):
    monkeypatch.delenv("XLT_VERBOSE", raising=False)
    damage, message = CASES[case]
    path = _damaged_copy(tiny_models, tmp_path, damage)
    log = tmp_path / "logs" / "prepare_model.log"
    capfd.readouterr()

    with pytest.raises(SystemExit) as exit_status, log_to(log):
        prepare_model(
            name="tiny", settings=_local(path), output=str(tmp_path / "results" / "models" / "tiny" / "base"), threads=1
        )

    line = "xlt: error: " + message.format(path=path.resolve())
    assert exit_status.value.code == 1
    assert log.read_text() == line + "\n"
    assert capfd.readouterr().err == line + "\n"
    assert files_under(tmp_path / "results") == []


def test_verbose_shows_the_traceback(tiny_models, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("XLT_VERBOSE", "1")
    path = _damaged_copy(tiny_models, tmp_path, _truncate_weights)
    log = tmp_path / "prepare_model.log"
    capfd.readouterr()
    with pytest.raises(SystemExit), log_to(log):
        prepare_model(name="tiny", settings=_local(path), output=str(tmp_path / "results" / "base"), threads=1)
    for text in (log.read_text(), capfd.readouterr().err):
        assert text.startswith("Traceback (most recent call last):")
        assert "xlt.errors.XltError: model tiny: weight file" in text


def test_a_bug_gets_its_traceback_in_the_log_and_one_line_on_the_terminal(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("XLT_VERBOSE", raising=False)
    log = tmp_path / "job.log"
    capfd.readouterr()
    with pytest.raises(SystemExit), log_to(log):
        {}["missing"]
    assert log.read_text().startswith("Traceback (most recent call last):")
    assert capfd.readouterr().err == f"xlt: unexpected KeyError: 'missing' (traceback in {log})\n"


def test_gpu_job_without_cuda_stops_at_once(tmp_path, capfd, monkeypatch):
    import socket

    import torch

    monkeypatch.delenv("XLT_VERBOSE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    log = tmp_path / "finetune.log"
    ran = []
    capfd.readouterr()
    with pytest.raises(SystemExit), log_to(log, gpus=2):
        ran.append(True)
    line = (
        f"xlt: error: this job asks for 2 GPU(s) (resources.gpu) but CUDA is not available on {socket.gethostname()}; "
        "run it on a GPU node, or set the model's resources.gpu to 0 to run on the CPU"
    )
    assert ran == []
    assert log.read_text() == line + "\n"
    assert capfd.readouterr().err == line + "\n"


def test_cpu_job_does_not_ask_for_cuda(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with log_to(tmp_path / "job.log", gpus=0):
        pass


@pytest.mark.parametrize("loader", ["load_model", "load_for_training"])
@pytest.mark.parametrize("swap", ["delete", "pickle"])
def test_weights_gone_after_prepare_fail_to_load_and_pickle_is_never_loaded(tiny_models, tmp_path, swap, loader):
    """prepare_model checked the folder; the weights changed before the job that loads
    them. Loading refuses pickled weights even when they are all there is, for
    inference and for fine-tuning (where a Hub model's weights are fetched at load time,
    so this is the only check)."""
    from xlt import models
    from xlt.models import ModelSpec

    load_model = getattr(models, loader)

    folder = _damaged_copy(tiny_models, tmp_path, lambda folder: folder)
    base = tmp_path / "results" / "base"
    prepare_model(name="tiny", settings=_local(folder), output=str(base), threads=1)
    (_remove_weights if swap == "delete" else _pickle_weights)(folder)

    with pytest.raises(XltError) as error:
        load_model(base, ModelSpec(name="tiny", path=str(folder)))

    assert str(error.value).startswith(f"model tiny: cannot load safetensors weights from {folder.resolve()}: ")
    assert "\n" not in str(error.value)
