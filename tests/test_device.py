"""One meaning of device, precision and rank for inference, batch, the ChimeraX command and training.

There is no GPU here: where a test needs CUDA or MPS to be present, PyTorch's
availability probes are mocked (and ``torch.cuda.set_device`` recorded), and
nothing is run on the mocked device.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from chimerax.struc2map import cli, device
from chimerax.struc2map.device import (autocast, checked_precision, process_device, rank_from_env,
                                       resolve_device, resolve_precision)
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.options import GenerateOptions
from chimerax.struc2map.tiling import TilingConfig, predict_tiled

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture
def gpus(monkeypatch):
    """Pretend PyTorch sees ``n`` CUDA GPUs (mocked: nothing runs on them); returns the set_device calls."""
    calls = []

    def have(n: int, bf16: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "set_device", calls.append)
        return calls

    return have


def test_resolve_device_names():
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device().type == expected
    for name in ("gpu0", "xpu", "", "cuda:x"):
        with pytest.raises(InputError, match="Unknown compute device"):
            resolve_device(name)


def test_auto_is_cuda_then_mps_then_cpu(gpus, monkeypatch):
    gpus(2)
    assert resolve_device("auto") == CUDA
    gpus(0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == MPS
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
    with pytest.raises(InputError, match="MPS"):
        resolve_device("mps")


def test_cuda_n_is_checked_against_the_gpus_there(gpus):
    gpus(2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InputError, match="CUDA GPU 2 was requested but this computer has 2"):
        resolve_device("cuda:2")
    gpus(0)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match="CUDA GPU was requested but PyTorch finds none"):
            resolve_device(name)


def test_auto_precision_is_bf16_where_native_else_fp32(gpus, monkeypatch):
    gpus(1, bf16=True)
    assert resolve_precision("auto", CUDA) == "bf16"
    gpus(1, bf16=False)
    assert resolve_precision("auto", CUDA) == "fp32"  # not fp16: "auto" never needs a gradient scaler
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("auto", MPS) == "fp32"
    for asked in ("fp32", "bf16", "fp16"):
        assert resolve_precision(asked, CPU) == asked
    with pytest.raises(InputError, match="precision must be one of"):
        resolve_precision("fp64", CPU)


@pytest.mark.parametrize("precision, enabled, dtype", [("fp32", False, None), ("bf16", True, torch.bfloat16),
                                                       ("fp16", True, torch.float16)])
def test_autocast_on_cpu(precision, enabled, dtype):
    with autocast(CPU, precision):
        assert torch.is_autocast_enabled("cpu") == enabled
        if enabled:
            assert torch.get_autocast_dtype("cpu") == dtype


def test_fp16_on_a_cpu_warns_once_per_prediction():
    with pytest.warns(UserWarning, match="fp16 on a CPU"):
        assert checked_precision("fp16", CPU) == "fp16"
    one_voxel = nn.Conv3d(1, 1, 1)
    with pytest.warns(UserWarning, match="fp16 on a CPU") as caught:
        predict_tiled(one_voxel, np.ones((8, 8, 8), np.float32),
                      TilingConfig(tile_size=16, margin=2, precision="fp16", skip_empty=False), device="cpu")
    assert len([w for w in caught if "fp16" in str(w.message)]) == 1


def test_process_device_takes_the_gpu_of_local_rank(gpus, monkeypatch):
    calls = gpus(2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("auto") == torch.device("cuda", 1)
    assert process_device("cuda") == torch.device("cuda", 1)
    assert calls == [torch.device("cuda", 1)] * 2  # library workspaces stay off GPU 0
    assert process_device("cpu") == CPU  # an explicit device is kept
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(InputError, match="LOCAL_RANK"):
        process_device("auto")
    monkeypatch.delenv("LOCAL_RANK")
    assert process_device("auto") == CUDA
    gpus(0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("auto") in (CPU, MPS)


def test_ranks_from_the_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_from_env() == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rank_from_env() == (2, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="RANK 4"):
        rank_from_env()


def test_training_uses_the_same_device_and_precision_rules():
    from chimerax.struc2map.training import train

    assert train._autocast is device.autocast and train.process_device is device.process_device
    assert not hasattr(train, "_device")


# ---------------------------------------------------------------- cuda:N on the command line and in ChimeraX

def test_command_line_accepts_cuda_n(gpus, data, tmp_path, capsys):
    args = cli.build_parser().parse_args(["generate", "m.pdb", "-r", "3", "-o", "o.mrc", "--device", "cuda:1"])
    assert args.device == "cuda:1"
    model = data("t20s_fragment_emd5623/test_model.pdb")
    gpus(1)
    assert cli.main(["generate", str(model), "-r", "3", "-o", str(tmp_path / "o.mrc"), "--device", "cuda:3"]) == 2
    assert "CUDA GPU 3 was requested but this computer has 1" in capsys.readouterr().err
    gpus(0)
    assert cli.main(["generate", str(model), "-r", "3", "-o", str(tmp_path / "o.mrc"), "--device", "cuda:0"]) == 2
    assert "CUDA GPU was requested but PyTorch finds none" in capsys.readouterr().err
    assert not (tmp_path / "o.mrc").exists()


def test_chimerax_command_accepts_cuda_n(gpus, tiny_weights):
    pytest.importorskip("chimerax.core")
    from chimerax.struc2map import cmd

    gpus(2)
    # the command's checked options, as its worker gets them (the request's field that _settings reads)
    request = SimpleNamespace(options=GenerateOptions(3.5, weights=str(tiny_weights.path), device="cuda:1"))
    tiling, loaded = cmd._settings(request)
    assert tiling.tile_size == 32 and loaded.sha256 == tiny_weights.sha256
    request.options = GenerateOptions(3.5, weights=str(tiny_weights.path), device="cuda:2")  # two GPUs: 0 and 1
    with pytest.raises(Exception, match="CUDA GPU 2"):
        cmd._settings(request)
