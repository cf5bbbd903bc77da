#!/usr/bin/env bash
# The base-to-new benchmark for one trainer: 11 datasets x 3 seeds, each seed trained on
# the base classes (16 shots) and its final checkpoint evaluated on the new classes; then
# the base / new / HM table (mean +- std over seeds, the average row) and its plot, saved
# under $OUTPUT/base2new/tables/. Finished runs are skipped, interrupted ones resume, a
# failed run is reported at the end without stopping the others.
#
# Usage: bash scripts/base2new_all.sh TRAINER [KEY VALUE ...] [options]
#   bash scripts/base2new_all.sh CoOpSAR
#   GPUS=0,1,2,3 bash scripts/base2new_all.sh CoOpSAR        # one job per GPU, from a queue
#   DATASETS="eurosat dtd" SEEDS=1 bash scripts/base2new_all.sh CoOp
#   bash scripts/base2new_all.sh CoOpSAR --dry-run           # the job list
#   bash scripts/base2new_all.sh CoOpSAR --slurm --partition gpu --time 720
#   bash scripts/base2new_all.sh CoOpSAR --sweep TRAINER.SAR.WEIGHT 1,5   # a row per value
# Environment and options: as scripts/bench.sh (DATA OUTPUT DATASETS SEEDS SHOTS CFG GPUS
# VERBOSE PYTHON TAG SWEEP MOVE_ASIDE, or SAR_PROMPT_DATA ...; --tag --move-aside --sweep, see
# docs/runs.md); the same as `sar-prompt base2new TRAINER`. Compare trainers afterwards with
#   sar-prompt results --output $OUTPUT --trainers CoOp CoOpSAR --save DIR
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 1 ]; then usage >&2; exit 2; fi
exec bash "$(dirname "${BASH_SOURCE[0]}")/bench.sh" base2new "$@"
