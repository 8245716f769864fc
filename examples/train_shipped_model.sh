#!/usr/bin/env bash
# Reproduce the shipped model (mitoscale/weights/mitoscale-small.safetensors) with one command:
#
#   bash examples/train_shipped_model.sh            # ~10 min corpus + ~45 + ~40 + 2 x ~27 min training on 2 CPU cores
#   OUT=/scratch/shipped NPROC=4 bash examples/train_shipped_model.sh   # 4 DDP processes
#
# Steps: simulate the 2,000-image training corpus (seed 1, 80 nm), train mito256 from
# scratch with configs/train_shipped.yaml (stage 1, 1000 steps), continue with a warm restart
# (configs/train_shipped_stage2.yaml, 1500 steps) and with the shift-consistency loss
# (configs/train_shipped_stage3.yaml and _stage4.yaml, 1600 steps each; all resumable: rerun the script after an
# interruption), export float16 weights, and score them on a held-out split simulated
# with another seed (20260917) at another pixel size (65 nm) against both baselines.
# Corpus config, seed and training config are recorded in docs/MODEL_CARD.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/shipped}
NPROC=${NPROC:-1}
MITOSCALE=${MITOSCALE:-.venv/bin/mitoscale}
PYTHON=${PYTHON:-.venv/bin/python}
WEIGHTS=${WEIGHTS:-mitoscale/weights/mitoscale-small.safetensors}

mkdir -p "$OUT"
# 1. training corpus: built-in simulator defaults (= configs/simulate.yaml), 2000 images, seed 1
"$MITOSCALE" simulate --n-images 2000 --seed 1 --out "$OUT/corpus_train.zarr"

# 2. training (encoder included: no pretrained weights exist for this architecture)
"$MITOSCALE" train --config configs/train_shipped.yaml --out "$OUT/run" \
    --set data.corpus="$OUT/corpus_train.zarr" --nproc-per-node "$NPROC" --resume

# 2b. stage 2: warm restart from stage 1 at half the peak learning rate
"$MITOSCALE" train --config configs/train_shipped_stage2.yaml --out "$OUT/run2" \
    --set data.corpus="$OUT/corpus_train.zarr" --set model.checkpoint="$OUT/run/model.safetensors" \
    --nproc-per-node "$NPROC" --resume

# 2c. stage 3: shift consistency (pairs of views 64 px apart), so overlapping tiles agree
"$MITOSCALE" train --config configs/train_shipped_stage3.yaml --out "$OUT/run3" \
    --set data.corpus="$OUT/corpus_train.zarr" --set model.checkpoint="$OUT/run2/model.safetensors" \
    --nproc-per-node "$NPROC" --resume

# 2d. stage 4: continue stage 3 with twice the consistency weight at half the learning rate
"$MITOSCALE" train --config configs/train_shipped_stage4.yaml --out "$OUT/run4" \
    --set data.corpus="$OUT/corpus_train.zarr" --set model.checkpoint="$OUT/run3/model.safetensors" \
    --nproc-per-node "$NPROC" --resume

# 3. ship float16 weights (+ model JSON with the training config, validation metrics and recipe)
"$MITOSCALE" train export "$OUT/run4/model.safetensors" --out "$WEIGHTS" --dtype float16 \
    --meta examples/shipped_model_meta.json

# 4. held-out evaluation: seed 20260917, 65 nm pixels, mitoscale vs classical vs Nellie
"$PYTHON" benchmarks/compare_methods.py --model "$WEIGHTS" --n-images 16 \
    --json "$OUT/heldout_65nm.json" --results "$OUT/compare_methods.md"
