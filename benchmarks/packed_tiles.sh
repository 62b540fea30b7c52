#!/usr/bin/env bash
# benchmarks/README.md §7b: lattice against packed cores, default weights and v1, back to back on one machine.
# Run from the repository root with the package installed, nothing else running; stashes src/tiling.py's
# uncommitted state, so commit first. Usage: bash benchmarks/packed_tiles.sh LATTICE_COMMIT [OUT]
set -euo pipefail
LATTICE=${1:?the commit whose src/tiling.py keeps every core on the lattice}
OUT=${2:-/tmp/packed_tiles}
mkdir -p "$OUT"/{lattice_default,lattice_v1,packed,packed_v1}
cp src/tiling.py "$OUT/tiling_packed.py"
git show "$LATTICE:src/tiling.py" > src/tiling.py
trap 'cp "$OUT/tiling_packed.py" src/tiling.py' EXIT
python benchmarks/inference.py --out "$OUT/lattice_default" --schemes default --repeats 3
python benchmarks/inference.py --weights weights/v1.pt --out "$OUT/lattice_v1" --schemes default --repeats 3
cp "$OUT/tiling_packed.py" src/tiling.py
python benchmarks/inference.py --out "$OUT/packed" --schemes paper default --repeats 3
python benchmarks/inference.py --weights weights/v1.pt --out "$OUT/packed_v1" --schemes default --repeats 3
