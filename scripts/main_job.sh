#!/usr/bin/env bash
# The main job: the first thing to run on a fresh machine (CPU only; about 5-10 minutes on 2 cores).
#
#   bash scripts/main_job.sh [OUTDIR]      (default OUTDIR: runs/main-job)
#   KIMG=24 (training length), LOSS=clr (any --loss spec, e.g. LOSS=stylegan2 for the official baseline)
#   can be set in the environment.
#
# 1. installs torch and this package (with the `demo` extra, which adds scikit-learn),
# 2. builds a 16-px data set from the 1 797 handwritten digits that scikit-learn ships,
# 3. trains a DCGAN (--cfg=dcgan) on CPU with ADA and the loss $LOSS (default: the CLR-GAN plugin),
# 4. renders images of the last snapshot with generate.py, and plots the losses from stats.jsonl.
# Results: OUTDIR/<run>/fakes*.png (snapshot grids), OUTDIR/<run>/generated/, OUTDIR/<run>/losses.png.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/main-job}"
KIMG="${KIMG:-24}"
LOSS="${LOSS:-clr}"

python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e ".[demo]"

if [ ! -f "$OUT/digits16/dataset.json" ]; then
    python -m stylegan_plus.tools.make_digits --dest="$OUT/digits16" --resolution=16
fi

python train.py --outdir="$OUT" --data="$OUT/digits16" --cfg=dcgan --cbase=1024 --loss="$LOSS" \
    --kimg="$KIMG" --kimg-per-tick=2 --snap=4 --metrics=none --device=cpu --workers=1

RUN="$(ls -d "$OUT"/[0-9][0-9][0-9][0-9][0-9]-*/ | sort | tail -n 1)"
PKL="$(ls "$RUN"network-snapshot-*.pkl | sort | tail -n 1)"
python generate.py --network="$PKL" --seeds=0-31 --outdir="${RUN}generated" --device=cpu --grid=1
python -m stylegan_plus.tools.plot_stats "$RUN"

echo
echo "Run folder:        $RUN"
echo "Snapshot grids:    $(ls "$RUN"fakes*.png | tr '\n' ' ')"
echo "generate.py:       ${RUN}generated/grid.png (and seed0000.png ... seed0031.png)"
echo "Loss plot:         ${RUN}losses.png"
