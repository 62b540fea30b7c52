"""Real maps without models as discriminator samples: prepare --unpaired, their tiles, one adversarial step."""
import json

import numpy as np
import pytest
from scipy import ndimage

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import write_map
from chimerax.struc2map.training.dataset import RealTileSampler
from chimerax.struc2map.training.prepare import PrepareConfig
from chimerax.struc2map.training.unpaired import density_region, prepare_unpaired

MEASLES = "unpaired/emd2867_4uft_box.mrc.gz"  # EMD-2867 box, unmasked, 1.186 Å voxels, axis order 3,2,1


def test_an_unpaired_map_is_normalised_like_a_target(data):
    made = prepare_unpaired(data(MEASLES), PrepareConfig())
    volume, corners = made["volume"], made["corners"]
    assert volume.dtype == np.float32 and len(corners) > 10
    t = PrepareConfig().tile_size
    assert all(0 <= c.min() and (c + t <= np.array(volume.shape)).all() for c in corners)
    # solvent near 0 (the envelope fades it), the density scaled so its top is about 1
    assert abs(float(np.median(volume))) < 0.02
    assert 0.5 < np.percentile(volume, 99.9) < 2.0
    assert 0.01 < made["region_fraction"] < 0.5


def test_masked_segment_region_and_refusals(tmp_path):
    values = np.zeros((40, 40, 40), np.float32)
    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (20, 20, 20)), 2.0)
    values[10:30, 10:30, 10:30] = 1.0 + smooth / smooth.std()  # a masked segment with texture: zero outside
    region = density_region(values)
    assert region[12:28, 12:28, 12:28].mean() > 0.3 and not region[:8].any()
    with pytest.raises(InputError, match="all zero"):
        density_region(np.zeros((8, 8, 8), np.float32))
    coarse = tmp_path / "coarse.mrc"
    write_map(coarse, MapData(values, np.zeros(3), 2.5))
    with pytest.raises(InputError, match="coarser than"):
        prepare_unpaired(coarse, PrepareConfig())


def test_prepare_unpaired_then_train_mixes_them_into_the_discriminator(data, tmp_path, capsys):
    pairs = str(data("bundled_pairs.txt"))
    out = tmp_path / "ds"
    assert cli.main(["prepare", pairs, "--only", "t20s_fragment_emd5623", "--output", str(out),
                     "--unpaired", str(data(MEASLES))]) == 0
    index = json.loads((out / "index.json").read_text())
    assert list(index["unpaired"]) == ["emd2867_4uft_box"] and index["real_tiles"]
    twin = tmp_path / "other" / "emd2867_4uft_box.mrc.gz"  # another map of the same name: refused, not merged
    twin.parent.mkdir()
    twin.write_bytes(data(MEASLES).read_bytes())
    assert cli.main(["prepare", pairs, "--only", "t20s_fragment_emd5623", "--output", str(out),
                     "--unpaired", str(data(MEASLES)), str(twin)]) == 1
    again = json.loads((out / "index.json").read_text())
    assert again["real_tiles"] == index["real_tiles"] and f"unpaired:{twin}" in again["failed"]
    sampler = RealTileSampler(out)
    batch = sampler.batch(3, np.random.default_rng(0))
    assert tuple(batch.shape) == (3, 1, 32, 32, 32) and batch.abs().max() > 0.3
    capsys.readouterr()
    run = tmp_path / "run"
    tiny = ["--widths", "4", "8", "16", "32", "--disc-widths", "4", "4", "8", "8", "--batch-size", "2",
            "--steps-per-epoch", "2", "--val-tiles", "2", "--epochs", "1"]
    assert cli.main(["train", str(out), "--run-dir", str(run), "--adv-weight", "0.01", *tiny]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["train_disc"] > 0  # the discriminator trained, on targets and unpaired tiles
    assert cli.main(["train", str(out), "--run-dir", str(tmp_path / "bad"), "--real-fraction", "2", *tiny]) == 2
