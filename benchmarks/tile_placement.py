"""How much where the tile seams fall moves a generator's held-out scores (weights/MODEL_CARD_v2.md, MODEL_CARD.md).

Each map is generated with the tile lattice shifted by eight offsets (the input padded in front, the output
cropped back) and once with the packed cores, then scored against the experimental map (correlation about
mean / PCC, as ``generate --compare``). The offsets are applied by wrapping ``generate.predict_tiled``.

    python benchmarks/tile_placement.py --weights weights/struc2map_generator.pt
"""
from __future__ import annotations

import argparse

import numpy as np

from inference import DATA

HELD_OUT = ["haemoglobin_emd3488", "gsec_emd3240", "kinesin_emd6187"]  # held out by v2 and the third generator
OFFSETS = [(0, 0, 0), (5, 0, 0), (0, 7, 0), (0, 0, 11), (10, 10, 10), (3, 13, 7), (15, 5, 2), (8, 16, 12)]


def shifted_tiler(tiler, offset):
    """``tiler`` run on the volume padded by ``offset`` voxels in front (z, y, x), on the lattice."""
    def run(generator, volume, config, **kwargs):
        volume = np.asarray(volume)
        pad = [(0, 0)] * (volume.ndim - 3) + [(o, 0) for o in offset]
        kwargs.pop("needed", None)  # no envelope: every non-empty tile on the shifted lattice
        output, report = tiler(generator, np.pad(volume, pad), config, **kwargs)
        return output[offset[0]:, offset[1]:, offset[2]:], report
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="weights/struc2map_generator.pt")
    args = p.parse_args()
    from chimerax.struc2map import generate
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.metrics import compare_maps
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.training.pairs import read_pairs, select
    from chimerax.struc2map.weights_io import load_weights

    weights = load_weights(args.weights)
    packed_tiler = generate.predict_tiled
    print("| pair | lattice, 8 offsets: range (mean ± sd) | packed | PCC lattice mean | PCC packed |")
    print("|---|---|---|---|---|")
    pairs = select(read_pairs(DATA / "pairs.txt") + read_pairs(DATA / "pairs_extra.txt"), HELD_OUT)
    for pair in pairs:
        atoms, reference = read_structure(pair.model), read_map(pair.map)
        scores = []
        for tiler in [shifted_tiler(packed_tiler, o) for o in OFFSETS] + [packed_tiler]:
            generate.predict_tiled = tiler
            made, _ = generate.generate(atoms.coords, atoms.atomic_numbers, pair.resolution, weights,
                                        b_factors=atoms.b_factors)
            s = compare_maps(made, reference)
            scores.append((s["correlation_about_mean"], s["pcc"]))
        generate.predict_tiled = packed_tiler
        lattice, packed = np.array(scores[:-1]), scores[-1]
        print(f"| {pair.name} | {lattice[:, 0].min():.3f}–{lattice[:, 0].max():.3f} ({lattice[:, 0].mean():.3f} ± "
              f"{lattice[:, 0].std():.3f}) | {packed[0]:.3f} | {lattice[:, 1].mean():.3f} | {packed[1]:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
