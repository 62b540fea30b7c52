"""The engine's generate pipeline, with a small randomly initialised generator (maps mean nothing)."""
import numpy as np
import pytest

from chimerax.struc2map import generate as gen
from chimerax.struc2map.errors import Cancelled, InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.structure import read_structure
from chimerax.struc2map.tiling import TilingConfig


@pytest.fixture(scope="module")
def fragment(data):
    return read_structure(data("t20s_fragment_emd5623/test_model.pdb"))


def test_output_is_on_a_1A_grid_around_the_model(fragment, tiny_weights):
    out, report = gen.generate(fragment.coords, fragment.atomic_numbers, 3.3, tiny_weights,
                               tiling=TilingConfig(tile_size=32, margin=6), device="cpu")
    assert np.allclose(out.voxel_size, 1.0)
    lo = out.origin
    hi = out.origin + (np.array(out.shape_xyz) - 1) * out.voxel_size
    # the grid holds every atom with at least 3 × resolution of padding (minus rounding)
    assert np.all(fragment.coords.min(0) - lo >= 3 * 3.3 - 1) and np.all(hi - fragment.coords.max(0) >= 3 * 3.3 - 1)
    assert out.array.dtype == np.float32 and np.isfinite(out.array).all()
    assert report.atoms == len(fragment.coords) and report.grid_xyz == out.shape_xyz
    assert report.tiles_run + report.tiles_skipped == report.tiles_total > 0
    assert report.effective_resolution == 3.3 and out.header["resolution"] == 3.3
    assert out.header["weights_sha256"] == tiny_weights.sha256


def test_finer_than_native_is_reported(fragment, tiny_weights):
    _, report = gen.generate(fragment.coords, fragment.atomic_numbers, 2.0, tiny_weights, device="cpu")
    assert report.effective_resolution == 3.0
    assert any("finer" in n for n in report.notes)


def test_input_on_wrong_grid_spacing_is_refused(tiny_weights):
    m = MapData(np.zeros((16, 16, 16), np.float32), (0, 0, 0), 1.5)
    with pytest.raises(InputError, match="1 Å grid"):
        gen.generate_from_input(m, 3.0, tiny_weights)


def test_too_large_for_memory_says_how_large(fragment, tiny_weights, monkeypatch):
    # The machine's free memory is replaced by a small number: a real 100 GB model cannot be made here.
    from chimerax.struc2map import memory

    monkeypatch.setattr(memory, "memory_limit", lambda: (10_000, "free memory"))
    with pytest.raises(InputError, match=r"voxels .* needs about .* MB of memory but 0.0 MB is available"):
        gen.generate(fragment.coords, fragment.atomic_numbers, 3.0, tiny_weights)


def test_cancel_stops_the_run(fragment, tiny_weights):
    with pytest.raises(Cancelled):
        gen.generate(fragment.coords, fragment.atomic_numbers, 3.0, tiny_weights, should_stop=lambda: True)


def test_weights_trained_on_masked_targets_give_zero_solvent(fragment, tiny_weights):
    from dataclasses import replace

    from chimerax.struc2map.mask import atom_mask

    meta = {**tiny_weights.metadata, "output": {**tiny_weights.metadata["output"], "mask_radius": 3.0}}
    masked = replace(tiny_weights, metadata=meta, spec=replace(tiny_weights.spec, mask_radius=3.0))
    out, _ = gen.generate(fragment.coords, fragment.atomic_numbers, 3.0, masked, device="cpu")
    inside = atom_mask(out, fragment.coords, 3.0)
    assert np.all(out.array[~inside] == 0) and np.any(out.array[inside] != 0)
    assert "background" in out.header


def test_native_weights_note_a_finer_request_and_lowpass_a_coarser_one(fragment, tiny_weights):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, coarse = gen.generate(fragment.coords, fragment.atomic_numbers, 12.0, tiny_weights, device="cpu")
        _, fine = gen.generate(fragment.coords, fragment.atomic_numbers, 2.0, tiny_weights, device="cpu")
    assert coarse.effective_resolution == 12.0 and not coarse.notes
    assert fine.effective_resolution == 3.0 and fine.notes == ["2 Å is finer than the generator's native 3 Å: "
                                                               "the map is left at 3 Å."]
