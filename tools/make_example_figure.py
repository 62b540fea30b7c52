"""Make docs/example_5me2_slices.png: slices of the README example's map next to the experimental map.

Run the README's first command first (it writes 5me2_struc2map.mrc), then

    python tools/make_example_figure.py 5me2_struc2map.mrc examples/emd_3488.mrc.gz --overwrite

Needs matplotlib (``pip install -e .[training]``). The committed figure is replaced only with
``--overwrite``; ``--output`` writes elsewhere.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chimerax.struc2map.errors import InputError
from chimerax.struc2map.files import atomic_path, check_output
from chimerax.struc2map.mapio import read_map
from chimerax.struc2map.resample import resample_onto


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generated")
    p.add_argument("experimental")
    p.add_argument("--slices", type=int, nargs="+", default=[37, 24], help="z indices of the generated map")
    p.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "example_5me2_slices.png"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output (the committed figure)")
    args = p.parse_args()
    try:
        import matplotlib
    except ImportError:
        sys.exit("This script needs matplotlib: pip install -e .[training] (or pip install matplotlib).")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        output = check_output(args.output, overwrite=args.overwrite, inputs=[args.generated, args.experimental])
    except InputError as e:
        sys.exit(str(e))
    generated = read_map(args.generated)
    experimental = resample_onto(read_map(args.experimental), generated)
    fig, axes = plt.subplots(len(args.slices), 2, figsize=(8, 4 * len(args.slices)), squeeze=False)
    for row, z in zip(axes, args.slices):
        for ax, (title, mapdata) in zip(row, ((f"struc2map z={z}", generated), ("EMD-3488", experimental))):
            ax.imshow(mapdata.array[z], cmap="gray", origin="upper")
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(output, suffix=".png", overwrite=args.overwrite) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
