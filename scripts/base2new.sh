#!/usr/bin/env bash
# Base-to-new generalisation, the CoOp family's protocol, for one dataset and one trainer:
# for each seed, train on the base classes (16 shots), evaluate the final checkpoint on the
# new classes, then print the base / new / harmonic-mean table. ZeroshotCLIP trains
# nothing: it is evaluated on the base and on the new classes.
#
# Usage: bash scripts/base2new.sh DATASET TRAINER [KEY VALUE ...] [--sweep KEY V1,V2]
#        [--tag NAME] [--move-aside] [--dry-run] (options: scripts/bench.sh)
#   bash scripts/base2new.sh caltech101 CoOpSAR
#   bash scripts/base2new.sh caltech101 ZeroshotCLIP
#   bash scripts/base2new.sh demo CoOpSAR          # offline, about 2 minutes on a 2-core CPU
#   bash scripts/base2new.sh dtd CoOpSAR --sweep TRAINER.SAR.WEIGHT 0,1,5   # a row per value
#
# Environment (defaults in brackets):
#   DATA    datasets root [<repo>/data]         OUTPUT  results root [<repo>/output]
#   SEEDS   seeds ["1 2 3"]                     SHOTS   shots per class [16]
#   CFG     trainer config: a name under configs/trainers/<TRAINER>/ (or the method's folder
#           for a SAR variant) or a path to a .yaml file [per method: sar_prompt/runs/protocols.py]
#   PYTHON  interpreter [<repo>/.venv/bin/python if present, else python]
#   GPUS    e.g. 0,1,2: one seed per GPU at a time  VERBOSE  1: every run's full output
#   TAG     name the config folder <config>__TAG instead of by the overrides
#   SWEEP   "KEY=V1,V2;KEY2=V3": as --sweep      MOVE_ASIDE  1: as --move-aside
# Each (PYTHON and VERBOSE aside) also as SAR_PROMPT_<NAME>, SAR_PROMPT_CONFIG for CFG: the
# long name wins when both are set. Options: as scripts/bench.sh (--data, --output, --seeds,
# --config, ...). The same as `sar-prompt base2new TRAINER --datasets DATASET`.
# Trailing KEY VALUE pairs go to every run and name its config folder
# (vit_b16_ctxv1__SAR.WEIGHT=5). Finished runs are skipped; unfinished ones resume from their
# last epoch; a folder holding another config's run is refused unless --move-aside renames
# it aside (docs/runs.md). The runs are described in sar_prompt/runs/protocols.py; this is
# `scripts/bench.sh base2new` on one dataset.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then usage >&2; exit 2; fi

DATASET="$1"; TRAINER="$2"; shift 2
# both names: SAR_PROMPT_DATASETS, when set, would win over DATASETS
SAR_PROMPT_DATASETS="$DATASET" DATASETS="$DATASET" \
  exec bash "$(dirname "${BASH_SOURCE[0]}")/bench.sh" base2new "$TRAINER" --table seeds "$@"
