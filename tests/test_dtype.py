"""A half-precision dtype on a CPU that would emulate it is named in a warning."""

import logging
import platform

import pytest
import torch

from xlt import models


@pytest.mark.parametrize(("native", "warned"), [(False, True), (True, False)])
def test_bfloat16_on_an_x86_cpu_without_its_instructions_is_warned_of(monkeypatch, caplog, native, warned):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for check in models.NATIVE_HALF_PRECISION["bfloat16"]:
        monkeypatch.setattr(torch.cpu, check, lambda: native, raising=False)
    caplog.set_level(logging.WARNING, logger="xlt")
    assert models.torch_dtype("bfloat16") == torch.bfloat16
    assert any("emulated" in record.getMessage() for record in caplog.records) == warned


def test_float32_and_other_machines_are_never_warned_of(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    caplog.set_level(logging.WARNING, logger="xlt")
    assert models.torch_dtype("float32") == torch.float32
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert models.torch_dtype("bfloat16") == torch.bfloat16
    assert not caplog.records
