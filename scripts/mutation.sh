#!/usr/bin/env bash
# Mutation testing of the method core: mutmut changes one operator, constant or name at a
# time in the code and runs the fast tests of that file; a mutant the tests do not notice
# ("survived") is a behaviour no test checks. Slow (minutes to hours): not part of CI.
#
# Usage: bash scripts/mutation.sh [TARGET]
#   TARGET  all (default): sar + trainers + modeling + results
#           sar       the SAR component: sar_prompt/sar.py, trainers/sar_variants.py
#           steps     the trainers' step code (the step methods in trainers/*.py)
#           core      sar + steps
#           trainers | modeling | results
#           FILE      one file, e.g. trainers/kgcoop.py
#   Targets and each file's tests: scripts/mutation/mutmut_config.py.
#   SAR_MUTATION_FROM_LINE=N  skip the mutants above line N (they show as skipped)
#   SAR_MUTATION_TO_LINE=M    skip the mutants below line M
# Afterwards: .venv/bin/python scripts/mutation/mutmut_config.py report (the survivors);
# .venv/bin/mutmut show ID (a mutant's diff) only once the run has ended.
# Results are cached in .mutmut-cache: a rerun tests only what changed (delete it to start
# afresh). The files are mutated in place: let the run finish or stop it with Ctrl-C.
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${VENV:-$REPO/.venv}"
TARGET="${1:-all}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "error: no virtual environment at $VENV; run bash scripts/setup.sh --no-dassl first" >&2; exit 2; }
if ! "$PY" -c "import mutmut, pytest" 2>/dev/null; then
  "$PY" -m pip install --disable-pip-version-check -q -e "$REPO[dev]"
fi

CONFIG="$REPO/scripts/mutation/mutmut_config.py"
# torch, CLIP and matplotlib imported once, each mutant's tests in a fork (pytest_server.py)
SERVER_DIR="$(mktemp -d)"
export SAR_MUTATION_TARGET="$TARGET" SAR_MUTATION_PYTHON="$PY"
export SAR_MUTATION_SERVER="$SERVER_DIR/pytest.sock"
PATHS="$("$PY" "$CONFIG" paths "$TARGET")"
RUNNER="$("$PY" "$CONFIG" runner "$TARGET")"
IFS=, read -r -a FILES <<< "$PATHS"
if ! git diff --quiet -- "${FILES[@]}"; then
  echo "error: uncommitted changes in $PATHS: commit or stash them first (mutmut edits these files in place)" >&2
  exit 2
fi
SERVER_PID=""
restore() {  # a run stopped between mutating a file and restoring it leaves FILE.bak
  for f in "${FILES[@]}"; do
    if [ -f "$f.bak" ]; then mv "$f.bak" "$f"; echo "restored $f" >&2; fi
  done
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$SERVER_DIR"
}
trap restore EXIT INT TERM
"$PY" "$REPO/scripts/mutation/pytest_server.py" serve "$SAR_MUTATION_SERVER" &
SERVER_PID=$!
for _ in $(seq 600); do  # its imports take seconds; without it the runs start pytest afresh
  [ -S "$SAR_MUTATION_SERVER" ] || ! kill -0 "$SERVER_PID" 2>/dev/null && break
  sleep 0.1
done
echo "mutation target $TARGET:"
"$PY" "$CONFIG" count "$TARGET"
# mutmut finds its hook module, mutmut_config, on the path
export PYTHONPATH="$REPO/scripts/mutation${PYTHONPATH:+:$PYTHONPATH}"
status=0
"$VENV/bin/mutmut" run --paths-to-mutate "$PATHS" --tests-dir tests --runner "$RUNNER" \
  --simple-output || status=$?
"$VENV/bin/mutmut" results || true
exit "$status"
