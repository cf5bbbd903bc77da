#!/usr/bin/env bash
# Run one of the CoOp family's protocols for one trainer, over its datasets and seeds.
#
# Usage: bash scripts/bench.sh PROTOCOL TRAINER [KEY VALUE ...] [options]
#   PROTOCOL   base2new | fewshot | xd (cross-dataset) | dg (domain generalisation)
#   bash scripts/bench.sh fewshot CoOpSAR --gpus 0,1,2,3
#   bash scripts/bench.sh xd CoOpSAR --dry-run
# Options (python -m sar_prompt.orchestration.bench --help): --data --output --datasets --seeds --shots
#   --config --gpus --dry-run --verbose --table --tag --move-aside --sweep KEY V1,V2, and
#   --slurm [--partition P --time MIN --wait ...]. Run folders, conflicts, sweeps: docs/runs.md.
# The same as `sar-prompt run PROTOCOL TRAINER ...` (docs/cli.md).
# Environment (defaults in brackets):
#   DATA     datasets root [<repo>/data]          OUTPUT   results root [<repo>/output]
#   DATASETS datasets [all of the protocol's]     SEEDS    seeds ["1 2 3"]
#   SHOTS    shots [16; fewshot: "1 2 4 8 16"]    CFG      config name or .yaml [per method]
#   GPUS     e.g. 0,1,2,3: one job per GPU        VERBOSE  1: every run's full output
#   TAG      config folder <config>__TAG          SWEEP    "KEY=V1,V2;KEY2=V3" (--sweep)
#   MOVE_ASIDE  1: rename another config's run folder aside instead of refusing it
#   PYTHON   interpreter [<repo>/.venv/bin/python if present, else python]
# Each (PYTHON and VERBOSE aside) also as SAR_PROMPT_<NAME>, SAR_PROMPT_CONFIG for CFG: the
# long name wins when both are set.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then usage >&2; exit 2; fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DATA="${DATA:-$REPO/data}" OUTPUT="${OUTPUT:-$REPO/output}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python; fi
fi
# As `-m sar_prompt.orchestration.bench`, but without the working directory on sys.path: run
# from a checkout's root, the checkout's sar_prompt/ would shadow the installed package.
exec "$PYTHON" -c "import runpy, sys; sys.path[:1] == [''] and sys.path.pop(0); \
runpy.run_module('sar_prompt.orchestration.bench', run_name='__main__', alter_sys=True)" "$@"
