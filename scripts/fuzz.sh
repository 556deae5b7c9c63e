#!/usr/bin/env bash
# A real fuzzing session of one target with libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh TARGET MINUTES     TARGET: safetensors | idx | state (one process; run several targets at once for more)
#
# Builds ./build-fuzz (clang++, -Dfuzz=true) once, then fuzzes for MINUTES from the committed seeds
# (tests/fuzz/corpus/TARGET, read only) into a working corpus build-fuzz/corpus/TARGET. A crash leaves
# its input in build-fuzz/artifacts/TARGET/: copy it into tests/fuzz/corpus/TARGET/ with the fix, so
# that the replay in `meson test` keeps it fixed. Prints libFuzzer's final stats (the exec count).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: scripts/fuzz.sh TARGET MINUTES   (TARGET: safetensors | idx | state)" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1 minutes=$2
case "$target" in safetensors|idx|state) ;; *) usage ;; esac
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -ge 1 ]] || usage
scripts/setup.sh --clang  # clang++ and its libFuzzer / sanitizer runtimes
build=${FERRITE_FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" --buildtype=debugoptimized -Dcuda=disabled -Dbenchmarks=false \
    -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args='-fno-sanitize-recover=all -fno-omit-frame-pointer' >/dev/null
fi
ninja -C "$build" "tests/fuzz/fuzz_$target" >/dev/null || ninja -C "$build" "tests/fuzz/fuzz_$target"
work="$build/corpus/$target" artifacts="$build/artifacts/$target/"
mkdir -p "$work" "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# -rss_limit_mb: an input that needs more than 2 GB is a finding (the readers bound what they allocate).
exec "$build/tests/fuzz/fuzz_$target" -max_total_time=$((minutes * 60)) -print_final_stats=1 \
  -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts" "$work" "tests/fuzz/corpus/$target"
