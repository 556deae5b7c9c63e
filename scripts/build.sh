#!/usr/bin/env bash
# Configures (release, -march=native) and builds ferrite into ./build (or $FERRITE_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FERRITE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release "$@" >/dev/null
fi
ninja -C "$build" >/dev/null || ninja -C "$build"  # re-run verbosely on failure to show the error
