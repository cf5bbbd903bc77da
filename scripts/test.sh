#!/usr/bin/env bash
# Set up (without Dassl unless it is already there) and run the test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
case "${1:-}" in
  -h|--help) echo "Usage: bash scripts/test.sh [pytest arguments]  (sets up .venv first; see" \
               "scripts/setup.sh)"; exit 0 ;;
esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh" --no-dassl
cd "$REPO"
exec "${VENV:-$REPO/.venv}/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
