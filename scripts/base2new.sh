#!/usr/bin/env bash
# Base-to-new generalisation, the CoOp family's protocol, for one dataset and one trainer:
# for each seed, train on the base classes (16 shots), evaluate the final checkpoint on the
# new classes, then print the base / new / harmonic-mean table. ZeroshotCLIP trains
# nothing: it is evaluated on the base and on the new classes.
#
# Usage: bash scripts/base2new.sh DATASET TRAINER [KEY VALUE ...]
#   bash scripts/base2new.sh caltech101 CoOpSAR
#   bash scripts/base2new.sh caltech101 ZeroshotCLIP
#   bash scripts/base2new.sh demo CoOpSAR          # offline, about a minute on a CPU
#
# Environment (defaults in brackets):
#   DATA    datasets root [<repo>/data]         OUTPUT  results root [<repo>/output]
#   SEEDS   seeds ["1 2 3"]                     SHOTS   shots per class [16]
#   CFG     trainer config: a name under configs/trainers/<TRAINER>/ (or the method's folder
#           for a SAR variant) or a path to a .yaml file [per trainer, see below]
#   PYTHON  interpreter [<repo>/.venv/bin/python if present, else python]
# Trailing KEY VALUE pairs go to every run (they are not part of the run folder's name).
# Finished runs are skipped; unfinished ones resume from their last epoch.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
if [ $# -lt 2 ]; then usage >&2; exit 2; fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASET="$1"; TRAINER="$2"; shift 2
EXTRA=("$@")
DATA="${DATA:-$REPO/data}"
OUTPUT="${OUTPUT:-$REPO/output}"
SEEDS="${SEEDS:-1 2 3}"
SHOTS="${SHOTS:-16}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python; fi
fi

die() { echo "error: $*" >&2; exit 2; }

DATASET_CFG="$REPO/configs/datasets/$DATASET.yaml"
[ -f "$DATASET_CFG" ] || die "unknown dataset '$DATASET': no $DATASET_CFG. Available: $(ls "$REPO/configs/datasets" | sed 's/\.yaml$//' | tr '\n' ' ')"

METHOD="${TRAINER%SAR}"  # a SAR variant uses its method's configs
TRAINS=1
[ "$METHOD" = ZeroshotCLIP ] && TRAINS=0
if [ "$DATASET" = demo ]; then
  DEFAULT_CFG=demo
else
  case "$METHOD" in
    CoOp) DEFAULT_CFG=vit_b16_ctxv1; [ "$DATASET" = imagenet ] && DEFAULT_CFG=vit_b16_ep50_ctxv1 ;;
    KgCoOp) DEFAULT_CFG=vit_b16_ep100_ctxv1 ;;
    CoCoOp) DEFAULT_CFG=vit_b16_c4_ep10_batch1_ctxv1 ;;
    MaPLe) DEFAULT_CFG=vit_b16_c2_ep5_batch4_2ctx ;;
    PromptSRC) DEFAULT_CFG=vit_b16_c2_ep20_batch4_4+4ctx ;;
    ZeroshotCLIP) DEFAULT_CFG=vit_b16 ;;
    *) DEFAULT_CFG="" ;;
  esac
fi
CFG="${CFG:-$DEFAULT_CFG}"
[ -n "$CFG" ] || die "no default config for trainer '$TRAINER'; set CFG to a config name or .yaml file"

if [[ "$CFG" == *.yaml ]]; then
  [ -f "$CFG" ] || die "CFG=$CFG: no such file"
  CFG_FILE="$(cd "$(dirname "$CFG")" && pwd)/$(basename "$CFG")"
  CFG_NAME="$(basename "$CFG" .yaml)"
else
  CFG_NAME="$CFG"; CFG_FILE=""
  for candidate in "$REPO/configs/trainers/$TRAINER/$CFG.yaml" \
                   "$REPO/configs/trainers/$METHOD/$CFG.yaml" \
                   "$REPO/configs/trainers/$CFG.yaml"; do
    if [ -f "$candidate" ]; then CFG_FILE="$candidate"; break; fi
  done
  [ -n "$CFG_FILE" ] || die "no config '$CFG' for $TRAINER under $REPO/configs/trainers/{$TRAINER,$METHOD,.}/"
fi

if [ "$DATASET" = demo ]; then
  echo "== demo: a tiny generated dataset and a tiny RANDOM CLIP. Its accuracies only show that"
  echo "== the pipeline runs end to end; they say nothing about any method."
  "$PYTHON" -m sar_prompt.demo prepare --root "$DATA" >/dev/null
  EXTRA=(MODEL.BACKBONE.PATH "$DATA/sar_demo/tiny_clip.pt" "${EXTRA[@]}")
fi

ROOT="$OUTPUT/base2new"
for SEED in $SEEDS; do
  COMMON="$DATASET/shots_$SHOTS/$TRAINER/$CFG_NAME/seed$SEED"
  TRAIN_DIR="$ROOT/train_base/$COMMON"
  TEST_DIR="$ROOT/test_new/$COMMON"
  COMMON_ARGS=(--root "$DATA" --seed "$SEED" --trainer "$TRAINER"
               --dataset-config-file "$DATASET_CFG" --config-file "$CFG_FILE")

  if [ "$TRAINS" = 0 ]; then
    for SUB in base new; do
      DIR="$TRAIN_DIR"; [ "$SUB" = new ] && DIR="$TEST_DIR"
      if [ -f "$DIR/results.json" ]; then
        echo "seed $SEED: $SUB-class evaluation finished earlier ($DIR), skipping"
        continue
      fi
      echo "seed $SEED: evaluating on $SUB classes (nothing to train) -> $DIR"
      "$PYTHON" "$REPO/train.py" "${COMMON_ARGS[@]}" --output-dir "$DIR" --eval-only \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$SUB" "${EXTRA[@]}"
    done
    continue
  fi

  if [ -f "$TRAIN_DIR/results.json" ]; then
    echo "seed $SEED: base training finished earlier ($TRAIN_DIR), skipping"
  else
    if [ -f "$TRAIN_DIR/prompt_learner/checkpoint" ]; then
      echo "seed $SEED: resuming base training in $TRAIN_DIR"
    else
      echo "seed $SEED: training on base classes -> $TRAIN_DIR"
    fi
    "$PYTHON" "$REPO/train.py" "${COMMON_ARGS[@]}" --output-dir "$TRAIN_DIR" \
      DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base TRAIN.CHECKPOINT_FREQ 1 \
      "${EXTRA[@]}"
  fi

  if [ -f "$TEST_DIR/results.json" ]; then
    echo "seed $SEED: new-class evaluation finished earlier ($TEST_DIR), skipping"
  else
    LAST="$(head -n1 "$TRAIN_DIR/prompt_learner/checkpoint" 2>/dev/null || true)"
    LOAD_EPOCH="${LAST##*-}"
    [[ "$LOAD_EPOCH" =~ ^[0-9]+$ ]] || die "no final checkpoint in $TRAIN_DIR/prompt_learner"
    echo "seed $SEED: evaluating epoch $LOAD_EPOCH on new classes -> $TEST_DIR"
    "$PYTHON" "$REPO/train.py" "${COMMON_ARGS[@]}" --output-dir "$TEST_DIR" \
      --model-dir "$TRAIN_DIR" --load-epoch "$LOAD_EPOCH" --eval-only \
      DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES new "${EXTRA[@]}"
  fi
done

echo
"$PYTHON" -m sar_prompt.results "$ROOT" --dataset "$DATASET" --trainer "$TRAINER" \
  --config "$CFG_NAME" --shots "$SHOTS" --seeds $SEEDS
