#!/usr/bin/env bash
# README command two: install, build, and run the whole test suite; exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
meson test -C "${FERRITE_BUILD_DIR:-build}" --print-errorlogs
