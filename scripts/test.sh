#!/usr/bin/env bash
# README command two: install, build, and run the whole test suite; exits non-zero if anything fails.
#
#   scripts/test.sh              g++ release build in ./build (or $FERRITE_BUILD_DIR), every suite
#   scripts/test.sh --sanitize   clang++ with AddressSanitizer + UndefinedBehaviorSanitizer (leak detection
#                                on, any UB fatal) in ./build-sanitize, every suite; the CUDA backend is
#                                left out of this build (nvcc cannot take the sanitizer flags, and its code
#                                only runs on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  ""|--sanitize) ;;
  *) echo "usage: scripts/test.sh [--sanitize]" >&2; exit 2 ;;
esac
scripts/setup.sh
if [ "$mode" = --sanitize ]; then
  command -v clang++ >/dev/null || { echo "test.sh --sanitize needs clang++ (apt-get install clang)" >&2; exit 1; }
  build=${FERRITE_BUILD_DIR:-build-sanitize}
  if [ ! -f "$build/build.ninja" ]; then
    CC=clang CXX=clang++ meson setup "$build" --buildtype=debugoptimized -Dcuda=disabled \
      -Db_sanitize=address,undefined -Db_lundef=false \
      -Dcpp_args='-fno-sanitize-recover=all -fno-omit-frame-pointer' >/dev/null
  fi
  ninja -C "$build" >/dev/null || ninja -C "$build"
  # Leaks are errors; UB aborts (the -fno-sanitize-recover above); reports go to the test logs.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # Sanitized code runs several times slower: the suites get three times their timeouts.
  meson test -C "$build" --print-errorlogs --timeout-multiplier 3
  exit
fi
scripts/build.sh
meson test -C "${FERRITE_BUILD_DIR:-build}" --print-errorlogs
