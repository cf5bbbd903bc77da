#!/usr/bin/env bash
# Set up (without Dassl unless it is already there) and run the test suite.
# Usage: bash scripts/test.sh [pytest arguments]
# Test files run in parallel, one per CPU core (pytest-xdist; SAR_PROMPT_TEST_WORKERS=N sets
# how many, 0 runs them in this process).
set -euo pipefail
case "${1:-}" in
  -h|--help) echo "Usage: bash scripts/test.sh [pytest arguments]  (sets up .venv first; see" \
               "scripts/setup.sh)"; exit 0 ;;
esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" --no-dassl
cd "$REPO"
PY="${VENV:-$REPO/.venv}/bin/python"
WORKERS="${SAR_PROMPT_TEST_WORKERS:-auto}"
PARALLEL=()
if [ "$WORKERS" != 0 ] && "$PY" -c "import xdist" 2>/dev/null; then
  PARALLEL=(-n "$WORKERS" --dist loadfile)  # a file's tests share its fixtures: one worker
fi
exec "$PY" -m pytest -q -p no:cacheprovider "${PARALLEL[@]}" tests "$@"
