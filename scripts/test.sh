#!/usr/bin/env bash
# README command two: install, build, and run the whole test suite; exits non-zero if anything fails.
#
#   scripts/test.sh                       g++ release build in ./build (or $FERRITE_BUILD_DIR), every suite
#   scripts/test.sh --sanitize [SUITE...] clang++ with AddressSanitizer + UndefinedBehaviorSanitizer (leaks
#                                         fatal, any UB fatal) in ./build-sanitize: every suite, or only the
#                                         named ones (building only what they run; CI runs the readers'
#                                         suites this way). The CUDA backend is left out of this build:
#                                         nvcc does not take the flags, and its kernels only run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != --sanitize ]; then
  [ $# -eq 0 ] || { echo "usage: scripts/test.sh [--sanitize [SUITE...]]" >&2; exit 2; }
  scripts/setup.sh
  scripts/build.sh
  exec meson test -C "${FERRITE_BUILD_DIR:-build}" --print-errorlogs
fi
shift
suites=("$@")
scripts/setup.sh --clang
build=${FERRITE_BUILD_DIR:-build-sanitize}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" --buildtype=debugoptimized -Dcuda=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args='-fno-sanitize-recover=all -fno-omit-frame-pointer' >/dev/null
fi
# Leaks are errors; UB aborts (the -fno-sanitize-recover above); reports go to the test logs.
# allocator_may_return_null: a huge allocation returns null as the real allocator does (the code turns
# it into an out_of_memory error, which the tests check) instead of ASan aborting the process.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Sanitized code runs several times slower: the suites get three times their timeouts.
if [ ${#suites[@]} -eq 0 ]; then
  ninja -C "$build" >/dev/null || ninja -C "$build"
  exec meson test -C "$build" --print-errorlogs --timeout-multiplier 3
fi
# Only the executables the named suites run (meson introspection knows which those are, once the
# build files are regenerated for any meson.build edited since the last build).
ninja -C "$build" build.ninja >/dev/null
# (Captured first: a failure of the script, e.g. an unknown suite, must stop here, not build everything.)
target_list=$(python3 - "$build" "${suites[@]}" <<'PY'
import json, os, subprocess, sys
build, wanted = sys.argv[1], set(sys.argv[2:])
tests = json.loads(subprocess.run(["meson", "introspect", "--tests", build], check=True, capture_output=True).stdout)
known = {s.split(":")[-1] for t in tests for s in t["suite"]}
if wanted - known:
    sys.exit(f"test.sh: unknown suite(s) {sorted(wanted - known)}; known: {sorted(known)}")
for t in tests:
    if wanted & {s.split(":")[-1] for s in t["suite"]}:
        for path in t["cmd"]:  # the test's program and any built program it is given (bench/mnist ...)
            if path.startswith(os.path.abspath(build) + "/") and os.path.basename(path) != "meson-private":
                print(os.path.relpath(path, os.path.abspath(build)))
PY
) || exit 2
if [ -n "$target_list" ]; then  # (none: the suites run scripts only)
  mapfile -t targets < <(printf '%s\n' "$target_list" | sort -u)
  ninja -C "$build" "${targets[@]}" >/dev/null || ninja -C "$build" "${targets[@]}"
fi
suite_args=()
for s in "${suites[@]}"; do suite_args+=(--suite "$s"); done
exec meson test -C "$build" --no-rebuild --print-errorlogs --timeout-multiplier 3 "${suite_args[@]}"
