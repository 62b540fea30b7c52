"""Model-map FSC of data-set pairs: a relative check of stated or estimated resolutions.

For each pair: the experimental map and molmap of its model at 1 Å (B-factors not applied), both weighted by one
soft envelope around the atoms (3-6 Å), FSC in shells of 1/(box·voxel); printed is the resolution where the FSC
first falls below 0.5. Without B-factors and with a tight mask the numbers are not resolutions in their own
right (3.2 Å maps come out near 8 Å): compare a pair whose resolution is unknown with pairs of known resolution.

    python benchmarks/model_map_fsc.py ../shared/data/pairs.txt ../shared/data/more/pairs.txt --only NAME ...
"""
from __future__ import annotations

import argparse

import numpy as np

from chimerax.struc2map.mapio import read_map
from chimerax.struc2map.mask import atom_distance, soft_envelope
from chimerax.struc2map.molmap import molmap
from chimerax.struc2map.structure import read_structure
from chimerax.struc2map.training.pairs import read_pairs, select


def fsc_half(map_path, model_path) -> tuple[float | None, float]:
    """(resolution Å where the FSC first drops below 0.5, or None; voxel size Å)."""
    exp, atoms = read_map(map_path), read_structure(model_path)
    model = molmap(atoms.coords, atoms.atomic_numbers, 1.0, on_grid=exp).array.astype(np.float64)
    weights = soft_envelope(atom_distance(exp, atoms.coords, 8.0), 3.0, 6.0)
    n, spacing = max(exp.array.shape), float(exp.voxel_size[0])
    a = np.fft.fftn(exp.array.astype(np.float64) * weights, (n, n, n))
    b = np.fft.fftn(model * weights, (n, n, n))
    f = np.fft.fftfreq(n, spacing)
    radius = np.sqrt(sum(g ** 2 for g in np.meshgrid(f, f, f, indexing="ij", sparse=True)))
    edges = np.linspace(0.0, 0.5 / spacing, n // 2 + 1)
    shell = np.digitize(radius.ravel(), edges)
    cross = np.bincount(shell, (a * np.conj(b)).real.ravel(), len(edges) + 1)
    power = np.bincount(shell, (np.abs(a) ** 2).ravel(), len(edges) + 1) * np.bincount(
        shell, (np.abs(b) ** 2).ravel(), len(edges) + 1)
    fsc = cross / np.sqrt(power + 1e-30)
    below = [i for i in range(2, len(edges)) if fsc[i] < 0.5]
    return (1.0 / edges[below[0] - 1] if below else None), spacing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+")
    p.add_argument("--only", nargs="+")
    args = p.parse_args()
    print("| pair | stated Å | voxel Å | FSC 0.5 (Å) |\n|---|---|---|---|")
    for pair in select([q for path in args.pairs for q in read_pairs(path)], args.only):
        res, spacing = fsc_half(pair.map, pair.model)
        print(f"| {pair.name} | {pair.resolution:g} | {spacing:.3f} | {'-' if res is None else f'{res:.2f}'} |",
              flush=True)


if __name__ == "__main__":
    main()
