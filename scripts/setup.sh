#!/usr/bin/env bash
# Set up sar-prompt on a fresh machine: a virtual environment in <repo>/.venv with PyTorch,
# this plugin (editable) and Dassl.
#
# Usage: bash scripts/setup.sh [--no-dassl] [--help]
#   --no-dassl   skip Dassl (the tests then use their Dassl test double)
# Environment:
#   VENV         where to create the environment [<repo>/.venv]
#   TORCH_SPEC   the PyTorch requirement(s) [torch torchvision]
#   DASSL_SRC    where to install Dassl from [git+https://github.com/KaiyangZhou/Dassl.pytorch]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch torchvision}"
DASSL_SRC="${DASSL_SRC:-git+https://github.com/KaiyangZhou/Dassl.pytorch}"
WITH_DASSL=1
for arg in "$@"; do
  case "$arg" in
    --no-dassl) WITH_DASSL=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
               exit 0 ;;
    *) echo "error: unknown option $arg (see the top of $0)" >&2; exit 2 ;;
  esac
done

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# OpenAI's clip imports pkg_resources, gone from setuptools 81 on (setup.py pins it too).
"${PIP[@]}" "setuptools<81"
# shellcheck disable=SC2086  # TORCH_SPEC is a list of requirements
"${PIP[@]}" $TORCH_SPEC
"${PIP[@]}" -e "$REPO[test]"

if [ "$WITH_DASSL" = 1 ] && ! "$VENV/bin/python" -c "import dassl" 2>/dev/null; then
  # Dassl pins 2019-era linters; install it alone, then what it imports at run time.
  "${PIP[@]}" numpy
  "${PIP[@]}" --no-deps --no-build-isolation "$DASSL_SRC"
  "${PIP[@]}" tensorboard scikit-learn scipy wilds tqdm tabulate yacs gdown
fi
echo "sar-prompt is set up in $VENV"
