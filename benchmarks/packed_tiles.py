"""Packed cores against the lattice, interleaved in one process (benchmarks/README.md §7b).

This CPU's speed drifts by 10–20% over minutes, more than packing saves on a large model, so runs made one
after the other cannot rank them: each round times, one after another, the default weights with packed cores,
the same weights on the lattice, and the first generator (which keeps the lattice), for each model; the
median over rounds is reported, after one untimed warm-up round.

    python benchmarks/packed_tiles.py --rounds 5
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

from inference import MODELS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from chimerax.struc2map import generate
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.weights_io import load_weights, load_weights_or_shipped, resolve_weights

    packed_tiler = generate.predict_tiled
    lattice_tiler = functools.partial(packed_tiler, pack=False)
    default, first = load_weights_or_shipped(None), load_weights(resolve_weights("v1"))
    runs = {"default, packed": (default, packed_tiler), "default, lattice": (default, lattice_tiler),
            "v1 (lattice)": (first, packed_tiler)}
    seconds = {(m, r): [] for m in MODELS for r in runs}
    tiles = {}
    structures = {model: read_structure(pdb) for model, (pdb, _, _) in MODELS.items()}
    for round_ in range(args.rounds + 1):
        for model, (_, _, resolution) in MODELS.items():
            atoms = structures[model]
            for name, (weights, tiler) in runs.items():
                generate.predict_tiled = tiler
                start = time.perf_counter()
                _, report = generate.generate(atoms.coords, atoms.atomic_numbers, resolution, weights,
                                              b_factors=atoms.b_factors, device="cpu")
                if round_:  # the first round warms up
                    seconds[model, name].append(time.perf_counter() - start)
                tiles[model, name] = report.tiles_run
        generate.predict_tiled = packed_tiler
    print(f"| model | {' | '.join(runs)} | packed ÷ lattice | packed ÷ v1 |")
    print("|---|" + "---|" * (len(runs) + 2))
    for model in MODELS:
        median = {name: statistics.median(seconds[model, name]) for name in runs}
        cells = " | ".join(f"{median[n]:.2f} s, {tiles[model, n]} tiles" for n in runs)
        print(f"| {model} | {cells} | {median['default, packed'] / median['default, lattice']:.2f}× | "
              f"{median['default, packed'] / median['v1 (lattice)']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
