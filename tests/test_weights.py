"""Struc2map weights files: round trip, and a clear WeightsError for each damaged or foreign file."""
import json
from pathlib import Path

import pytest
import torch

from chimerax.struc2map import weights_io as weights_module
from chimerax.struc2map import weights_meta
from chimerax.struc2map.errors import Struc2mapError, WeightsError
from chimerax.struc2map.network import Generator
from chimerax.struc2map.files import file_sha256
from chimerax.struc2map.weights_io import (
    MISSING_WEIGHTS_HELP,
    default_weights_path,
    load_weights,
    read_metadata,
    save_weights,
)

SMALL = (4, 8, 16, 32)
TRAINING = {"maps": ["EMD-1234"], "epochs": 3, "metrics": {"val_pcc": 0.61}}
UNPICKLED = []


def record_call(note: str) -> None:
    UNPICKLED.append(note)


class Payload:
    """An arbitrary object whose unpickling would call record_call."""

    def __reduce__(self):
        return (record_call, ("code ran",))


def random_generator(widths=SMALL, seed=0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(widths)
    for p in g.parameters():
        p.data.normal_()
    return g


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_weights(tmp_path / "model", random_generator(), {"training": TRAINING, "output": {"normalisation": "minmax", "background": 0.03}})


def reseal(pt_path: Path) -> None:
    """Make the .json's checksum match the .pt again, to reach the checks after it."""
    json_path = pt_path.with_suffix(".json")
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    meta["sha256"] = file_sha256(pt_path)
    json_path.write_text(json.dumps(meta))


def edit_metadata(pt_path: Path, **changes) -> None:
    json_path = pt_path.with_suffix(".json")
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    meta.update(changes)
    json_path.write_text(json.dumps(meta))


def test_same_tensors_give_the_same_file(saved, tmp_path):
    """The checksum names the weights, not where or when they were written (make_weights.sh can be checked by it)."""
    again = save_weights(tmp_path / "elsewhere" / "other_name", random_generator(), {"training": TRAINING})
    assert again.read_bytes() == saved.read_bytes() and read_metadata(again)["sha256"] == read_metadata(saved)["sha256"]


def test_round_trip(saved, tmp_path):
    assert saved == tmp_path / "model.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]  # no temp files left
    source = random_generator()
    for given in (saved, tmp_path / "model.json", tmp_path / "model", str(saved)):
        w = load_weights(given)
        assert w.path == saved and not w.generator.training
        assert w.sha256 == file_sha256(saved) and w.short_id == w.sha256[:12]
        loaded = w.generator.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(w.generator(x), source.eval()(x))
    meta = w.metadata
    assert meta["format"] == "struc2map-weights" and meta["format_version"] == 1
    assert meta["architecture"] == "unet++" and meta["widths"] == list(SMALL)
    assert meta["input"] == {"simulator": "molmap", "resolution": 2.0, "grid_spacing": 1.0, "normalisation": "minmax"}
    assert meta["output"]["background"] == 0.03 and meta["training"] == TRAINING
    assert meta["sha256"] == w.sha256 and meta["created"] and meta["struc2map_version"]
    assert read_metadata(saved) == meta


def test_plain_torch_load_reads_the_state_dict(saved):
    state = torch.load(saved, weights_only=True, map_location="cpu")
    assert state.keys() == Generator(SMALL).state_dict().keys()


def test_overwrite(saved):
    with pytest.raises(Struc2mapError, match="already exists"):
        save_weights(saved, random_generator(seed=1), {})
    save_weights(saved, random_generator(seed=1), {}, overwrite=True)
    w = load_weights(saved)
    assert torch.equal(w.generator.final.weight, random_generator(seed=1).final.weight)
    assert w.metadata["training"] == {}


def test_missing_files(saved):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(saved.with_name("other.pt"))
    saved.with_suffix(".json").unlink()
    with pytest.raises(WeightsError, match="metadata file .*model.json.* is missing"):
        load_weights(saved)


def test_flipped_byte_is_caught_by_checksum(saved):
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"is corrupt or was changed: sha256 [0-9a-f]{64}, expected [0-9a-f]{64}"):
        load_weights(saved)


def test_truncated_file(saved):
    saved.write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="is corrupt or was changed"):
        load_weights(saved)
    reseal(saved)  # even with a matching checksum it cannot be read
    with pytest.raises(WeightsError, match="cannot be read as plain tensors"):
        load_weights(saved)


def test_arbitrary_pickle_is_refused_without_running_it(saved):
    torch.save({"final.weight": Payload()}, saved)
    reseal(saved)
    with pytest.raises(WeightsError, match="refused because unpickling them could run code"):
        load_weights(saved)
    assert UNPICKLED == []
    torch.load(saved, weights_only=False)  # proves the payload is live: an unsafe load runs it
    assert UNPICKLED == ["code ran"]
    UNPICKLED.clear()


def test_not_a_state_dict(saved):
    torch.save(torch.zeros(3), saved)
    reseal(saved)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_weights(saved)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "does not describe Struc2map weights"),
        (json.dumps({"format": "other"}), "does not describe Struc2map weights"),
    ],
)
def test_unreadable_metadata(saved, text, message):
    saved.with_suffix(".json").write_text(text)
    with pytest.raises(WeightsError, match=message):
        load_weights(saved)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": 2}, "newer Struc2map .*version 2.* up to 1"),
        ({"architecture": "resnet"}, "'resnet' network"),
        ({"widths": "wide"}, "no valid list of layer widths"),
        ({"widths": [4, 8, 16]}, "'widths' must be 4 layer widths"),
        ({"widths": [100000, 8, 16, 32]}, "'widths' must be 4 layer widths"),
        ({"sha256": None}, "no sha256"),
    ],
)
def test_bad_metadata_fields(saved, changes, message):
    edit_metadata(saved, **changes)
    with pytest.raises(WeightsError, match=message):
        load_weights(saved)


def test_width_mismatch_names_the_keys(saved):
    edit_metadata(saved, widths=[4, 8, 16, 64])
    with pytest.raises(WeightsError, match=r"widths \[4, 8, 16, 64\] .*of the wrong shape: conv2_1.conv1.weight"):
        load_weights(saved)


def test_missing_and_unexpected_keys_are_named(saved):
    state = torch.load(saved, weights_only=True)
    del state["final.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, saved)
    reseal(saved)
    with pytest.raises(WeightsError, match="missing: final.bias; unexpected: extra.weight"):
        load_weights(saved)


def test_default_weights_path(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_meta, "__file__", str(tmp_path / "pkg" / "weights_meta.py"))
    assert default_weights_path() is None
    shipped = save_weights(tmp_path / "pkg" / "weights" / "struc2map_generator", random_generator(), {})
    assert default_weights_path() == shipped
    shipped.with_suffix(".json").unlink()
    assert default_weights_path() is None


def test_widths_the_tensors_do_not_fit_allocate_nothing(saved):
    """Metadata claiming 4096-channel layers: the shapes are compared before a generator is built (was a
    multi-gigabyte allocation, then a traceback)."""
    edit_metadata(saved, widths=[4096] * 4)
    with pytest.raises(WeightsError, match=r"do not fit a U-Net\+\+ generator of widths \[4096, 4096, 4096, 4096\]"):
        load_weights(saved)


def test_missing_weights_help():
    """The engine's advice names no front end's option: each front end adds its own (missing_hint)."""
    for phrase in ("No trained Struc2map weights are installed", "weights/struc2map_generator.pt",
                   "NAME.pt with NAME.json", "struc2map train", "docs/training.md"):
        assert phrase in MISSING_WEIGHTS_HELP
    assert "--" not in MISSING_WEIGHTS_HELP


def test_weights_created_meanwhile_are_not_replaced(tmp_path, monkeypatch):
    """No-overwrite holds even against a file that appears while the weights are written (was check-then-write)."""
    target = tmp_path / "w.pt"
    real_save = torch.save

    def save_while_someone_writes(obj, path):
        target.write_bytes(b"someone else's weights")
        real_save(obj, path)

    monkeypatch.setattr(weights_module.torch, "save", save_while_someone_writes)
    with pytest.raises(Struc2mapError):
        save_weights(tmp_path / "w", random_generator(), {})
    assert target.read_bytes() == b"someone else's weights"
