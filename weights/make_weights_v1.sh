#!/usr/bin/env bash
# Re-create the first generator, weights/v1.pt, from the real pairs in ../shared/data. It needs the code
# of that time (dataset format 1, one input channel): run it in a checkout of commit 6af1654.
# About 100 minutes on a 2-core CPU (the shipped run: see MODEL_CARD_v1.md). Run from the repository
# root in an environment where `struc2map` is installed (README's first command).
# Usage: bash weights/make_weights_v1.sh [DATA_DIR] [WORK_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
WORK=${2:-work_data}
TRAIN="apoferritin_emd20026 vp6_emd6272 spike_ntd_emd21457 hcn4_emd0093 actin_emd5168 emd35448_8ihl t20s_fragment_emd5623"
VAL="haemoglobin_emd3488 t20s_4.8A"
COMMON=(--widths 16 32 64 128 --adv-weight 0 --lr 2e-4 --batch-size 8 --steps-per-epoch 25 --val-tiles 64
        --val-pairs $VAL --train-pairs $TRAIN)

# rubella (35 Å) is left out: far below the method's range.
struc2map prepare "$DATA/pairs.txt" --output "$WORK/ds1" --only $TRAIN $VAL
# The shipped run trained 23 epochs, then went on with a moving average of the weights.
struc2map train "$WORK/ds1" --run-dir "$WORK/run" --epochs 23 "${COMMON[@]}"
struc2map train "$WORK/ds1" --run-dir "$WORK/run" --epochs 61 --ema-decay 0.995 "${COMMON[@]}"
struc2map export "$WORK/run" --dataset "$WORK/ds1" --which average --output "$WORK/generator.pt" --overwrite
struc2map evaluate "$DATA/pairs.txt" --only $VAL --weights "$WORK/generator.pt" --output "$WORK/eval"
struc2map export "$WORK/run" --dataset "$WORK/ds1" --which average --metrics "$WORK/eval/results.csv" \
    --output weights/v1.pt --overwrite
