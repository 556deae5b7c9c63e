#!/usr/bin/env bash
# Prints the path of a python3 that has torch, numpy, safetensors and matplotlib:
#   $FERRITE_PYTHON if set (e.g. a GPU machine's python that already has torch), otherwise
#   .venv-compare/bin/python, created from scripts/requirements-compare.txt on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
need='import torch, numpy, safetensors, matplotlib'
if [ -n "${FERRITE_PYTHON:-}" ]; then
  "$FERRITE_PYTHON" -c "$need" || { echo "setup-compare: $FERRITE_PYTHON lacks torch/numpy/safetensors/matplotlib" >&2; exit 1; }
  echo "$FERRITE_PYTHON"; exit 0
fi
venv=.venv-compare
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$need" 2>/dev/null; then
  echo "setup-compare: creating $venv from scripts/requirements-compare.txt (downloads torch once)" >&2
  python3 -m venv "$venv" >&2 || { apt-get install -y -qq python3-venv >&2 && python3 -m venv "$venv" >&2; }
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r scripts/requirements-compare.txt >&2
fi
echo "$PWD/$venv/bin/python"
