#!/usr/bin/env bash
# Runs one benchmark in ferrite and in PyTorch from the same inputs and writes a side-by-side report.
#
#   scripts/compare.sh mnist [--device cpu|cuda|all] [--reps N] [--torch-compile] [-- EXTRA BENCH FLAGS]
#
# Builds ferrite if needed; gets a python with torch from scripts/setup-compare.sh ($FERRITE_PYTHON to use
# an existing one); exports the initial weights, data and batch order from ferrite; then runs ferrite and
# PyTorch alternately (A B A B …) N times each per device, with equal threads; writes every raw JSON,
# report.md and PNG charts to results/<benchmark>-<timestamp>/ and prints the report.
# Exit status: non-zero if a run failed or parity failed (not when ferrite is slower).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
bench=$1; shift
device=cpu reps=5 compile=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --reps) reps=${2:?--reps needs a value}; shift 2 ;;
    --torch-compile) compile=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$bench" in mnist) ;; *) echo "compare.sh: unknown benchmark '$bench' (available: mnist)" >&2; exit 2 ;; esac
case "$device" in cpu|cuda|all) ;; *) echo "compare.sh: --device must be cpu, cuda or all, got '$device'" >&2; exit 2 ;; esac
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --reps must be a positive integer, got '$reps'" >&2; exit 2; }

scripts/setup.sh
scripts/build.sh
py=$(scripts/setup-compare.sh)
exe=./"${FERRITE_BUILD_DIR:-build}"/bench/$bench
threads=${FERRITE_THREADS:-$(nproc)}
out=results/$bench-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
devices=("$device")
[ "$device" = all ] && devices=(cpu cuda)

status=0
common=(--threads "$threads" --quiet "${extra[@]}")
"$exe" "${common[@]}" --warmup-steps 0 --save-init "$out/init.safetensors" --export-data "$out/data.safetensors" \
  --json "$out/export-run.json" >/dev/null
ferrite_json=() pytorch_json=() compile_json=()
for dev in "${devices[@]}"; do
  for i in $(seq 1 "$reps"); do
    echo "compare.sh: $dev repetition $i/$reps" >&2
    f=$out/ferrite-$dev-$i.json p=$out/pytorch-$dev-$i.json
    "$exe" "${common[@]}" --device "$dev" --init-from "$out/init.safetensors" --json "$f" >/dev/null || true
    "$py" scripts/pytorch/$bench.py "${common[@]}" --device "$dev" --init-from "$out/init.safetensors" \
      --data-from "$out/data.safetensors" --json "$p" >/dev/null || status=1
    ferrite_json+=("$f"); [ -f "$p" ] && pytorch_json+=("$p")
    if [ "$compile" = 1 ]; then
      c=$out/pytorch-compile-$dev-$i.json
      "$py" scripts/pytorch/$bench.py "${common[@]}" --device "$dev" --compile --init-from "$out/init.safetensors" \
        --data-from "$out/data.safetensors" --json "$c" >/dev/null || status=1
      [ -f "$c" ] && compile_json+=("$c")
    fi
  done
done
[ ${#pytorch_json[@]} -gt 0 ] || { echo "compare.sh: every PyTorch run failed" >&2; exit 1; }
compile_args=()
[ ${#compile_json[@]} -gt 0 ] && compile_args=(--torch-compile "${compile_json[@]}")
"$py" scripts/compare.py --ferrite "${ferrite_json[@]}" --pytorch "${pytorch_json[@]}" "${compile_args[@]}" \
  --out "$out" --title "$bench: ferrite vs PyTorch" \
  --command "scripts/compare.sh $bench --device $device --reps $reps$([ $compile = 1 ] && echo ' --torch-compile')" || status=1
echo "compare.sh: report in $out/report.md" >&2
exit $status
