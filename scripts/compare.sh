#!/usr/bin/env bash
# Runs one benchmark in ferrite and in PyTorch from the same inputs and writes a side-by-side report.
#
#   scripts/compare.sh mnist|qca|resnet18 [--device cpu|cuda|all] [--reps N] [--torch-compile] [--ranks R] [-- EXTRA BENCH FLAGS]
#
# Builds ferrite if needed; gets a python with torch from scripts/setup-compare.sh ($FERRITE_PYTHON to use
# an existing one); exports the initial weights, data and batch order from ferrite; then runs ferrite and
# PyTorch alternately (A B A B …) N times each per device, with equal threads; writes every raw JSON,
# report.md and PNG charts to results/<benchmark>-<timestamp>/ and prints the report. EXTRA BENCH FLAGS go
# to ferrite and, except the data flags (--samples, --test-samples, --data-dir), to PyTorch, which reads the
# data ferrite exported. Each run's stderr is kept in <run>.log next to its JSON.
# qca: ferrite exports the law (--no-small-outc unless EXTRA sets --weights or --[no-]small-outc) and the
# initial state; one untimed PyTorch run on the cpu writes the reference states after 1, 2, 10 steps and
# --steps; every ferrite run reports its error against them; both time --steps steps (no --torch-compile).
# Prebuilt binaries (a GPU machine without apt or Debian packages, e.g. scripts/gpu-bundle.sh's carry):
#   FERRITE_BENCH_DIR=DIR (holding mnist / qca) skips setup.sh and build.sh; FERRITE_PYTHON then names a
#   python with torch and safetensors (matplotlib optional: charts are skipped without it).
# --ranks R (mnist): data parallel on both sides, each launched by `mpirun -np R` with the same core binding:
#   ferrite's ranks over MPI, PyTorch's DistributedDataParallel over gloo (nccl on cuda), the same global
#   batch and shards, threads / R threads per rank.
# resnet18: PyTorch runs twice per repetition, in NCHW and in channels_last (its faster format depends on the
#   machine); both read ferrite's exported images, batch orders and crop/flip draws (--export-data). One
#   more untimed PyTorch run with 1 thread gives PyTorch's own fp32 spread, which the step-loss check uses.
# Exit status: non-zero if a run failed or parity failed (not when ferrite is slower).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
bench=$1; shift
device=cpu reps=5 compile=0 ranks=1 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --reps) reps=${2:?--reps needs a value}; shift 2 ;;
    --torch-compile) compile=1; shift ;;
    --ranks) ranks=${2:?--ranks needs a value}; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$bench" in mnist|qca|resnet18) ;; *) echo "compare.sh: unknown benchmark '$bench' (available: mnist, qca, resnet18)" >&2; exit 2 ;; esac
case "$device" in cpu|cuda|all) ;; *) echo "compare.sh: --device must be cpu, cuda or all, got '$device'" >&2; exit 2 ;; esac
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --reps must be a positive integer, got '$reps'" >&2; exit 2; }
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --ranks must be a positive integer, got '$ranks'" >&2; exit 2; }
if [ "$ranks" -gt 1 ] && [ "$bench" != mnist ]; then
  echo "compare.sh: --ranks is available for mnist only" >&2; exit 2
fi
if [ "$bench" = qca ] && [ "$compile" = 1 ]; then
  echo "compare.sh: --torch-compile is not available for qca (scripts/pytorch/qca.py runs eager only)" >&2; exit 2
fi

if [ -n "${FERRITE_BENCH_DIR:-}" ]; then
  exe=$FERRITE_BENCH_DIR/$bench
  [ -x "$exe" ] || { echo "compare.sh: FERRITE_BENCH_DIR=$FERRITE_BENCH_DIR has no executable '$bench'" >&2; exit 2; }
  py=${FERRITE_PYTHON:-python3}
  "$py" -c 'import torch, safetensors' 2>/dev/null ||
    { echo "compare.sh: $py lacks torch or safetensors (set FERRITE_PYTHON)" >&2; exit 2; }
else
  scripts/setup.sh
  scripts/build.sh
  py=$(scripts/setup-compare.sh)
  exe=./"${FERRITE_BUILD_DIR:-build}"/bench/$bench
fi
threads=${FERRITE_THREADS:-$(nproc)}
# Data parallel: both sides start under the same mpirun (core binding per rank), threads / ranks each.
ferrite_launch=() pytorch_launch=() ddp=()
if [ "$ranks" -gt 1 ]; then
  command -v mpirun >/dev/null || { echo "compare.sh: --ranks needs mpirun (Debian openmpi-bin)" >&2; exit 2; }
  mpi=(mpirun -np "$ranks")
  [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
  [ "$ranks" -gt "$(nproc)" ] && mpi+=(--oversubscribe)
  threads=$(( threads / ranks > 0 ? threads / ranks : 1 ))
  MASTER_PORT=$("${FERRITE_PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export MASTER_PORT MASTER_ADDR=127.0.0.1
  ferrite_launch=("${mpi[@]}")
  pytorch_launch=("${mpi[@]}" -x MASTER_PORT -x MASTER_ADDR -x OMP_PROC_BIND -x OMP_PLACES)
  ddp=(--ddp)
fi
# Both sides pin their threads: ferrite pins its TBB threads itself (--pin, the default); PyTorch's
# OpenMP pool is bound to cores through the standard OpenMP variables (the caller may override them).
export OMP_PROC_BIND=${OMP_PROC_BIND:-true} OMP_PLACES=${OMP_PLACES:-cores}
out=results/$bench-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
devices=("$device")
[ "$device" = all ] && devices=(cpu cuda)

# PyTorch reads the data from ferrite's export: the flags that pick the data are ferrite's alone.
pytorch_extra=() skip=0
for a in "${extra[@]}"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case "$a" in
    --samples|--test-samples|--data-dir|--train-samples|--dataset) skip=1 ;;
    --samples=*|--test-samples=*|--data-dir=*|--train-samples=*|--dataset=*) ;;
    --augment|--no-augment|--pin|--no-pin) ;;  # ferrite-only (PyTorch applies the exported draws)
    --tf32) pytorch_extra+=(--allow-tf32) ;;
    *) pytorch_extra+=("$a") ;;
  esac
done

status=0 missing=()
# run NAME JSON CMD...: runs CMD with stderr in JSON's .log; a run that leaves no JSON is recorded in missing.
run() {
  local name=$1 json=$2 log=${2%.json}.log; shift 2
  "$@" >/dev/null 2>"$log" || status=1
  if [ ! -s "$json" ]; then
    local why; why=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 || true)
    missing+=("$name wrote no JSON report: ${why:-no message} (log: $log)")
    echo "compare.sh: ${missing[-1]}" >&2
    status=1
  fi
}
# without VALUED_FLAGS -- BARE_FLAGS -- ARGS...: ARGS without those flags (as "--f v" or "--f=v"; bare ones
# alone), in the array `kept`. The flags compare.sh sets itself must go: CLI11 refuses a repeated option.
without() {
  local valued=() bare=() skip=0 a
  while [ "$1" != -- ]; do valued+=("$1"); shift; done; shift
  while [ "$1" != -- ]; do bare+=("$1"); shift; done; shift
  kept=()
  for a in "$@"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    if [[ " ${valued[*]} " == *" $a "* ]]; then skip=1; continue; fi
    if [[ " ${bare[*]} " == *" $a "* || " ${valued[*]/%/=} " == *" ${a%%=*}= "* ]]; then continue; fi
    kept+=("$a")
  done
}
if [ "$bench" = qca ]; then
  # The export: the law and initial state (after one untimed step; --steps is the timed runs').
  qca_set=(--threads --device --json --save-weights --save-state --save-steps --reference-state --density-png
           --density-colormap)
  without --steps --warmup-steps "${qca_set[@]}" -- -- "${extra[@]}"; export_extra=("${kept[@]}")
  [[ " ${extra[*]} " =~ \ (--weights|--small-outc|--no-small-outc)(=|\ ) ]] || export_extra+=(--no-small-outc)
  if ! "$exe" "${export_extra[@]}" --threads "$threads" --steps 1 --warmup-steps 0 \
       --save-weights "$out/weights.safetensors" --save-state "$out/state.safetensors" --json "$out/export-run.json" \
       >/dev/null 2>"$out/export-run.log"; then
    echo "compare.sh: exporting the law and the initial state failed (log: $out/export-run.log):" >&2
    tail -n 5 "$out/export-run.log" >&2
    exit 1
  fi
  # The timed runs: the exported files replace whatever EXTRA named; PyTorch gets no ferrite-only flags.
  without --weights --initial-state "${qca_set[@]}" -- -- "${extra[@]}"; ferrite_extra=("${kept[@]}")
  without --weights --initial-state --init --seed "${qca_set[@]}" -- \
    --small-outc --no-small-outc --pin --no-pin -- "${extra[@]}"; pytorch_extra=("${kept[@]}")
  steps=100  # bench/qca's and qca.py's default
  for ((i = 0; i < ${#extra[@]}; i++)); do
    case "${extra[i]}" in --steps) steps=${extra[i + 1]:-$steps} ;; --steps=*) steps=${extra[i]#--steps=} ;; esac
  done
  [[ "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --steps must be a positive integer, got '$steps'" >&2; exit 2; }
  save_steps=()
  for k in 1 2 10; do [ "$k" -lt "$steps" ] && save_steps+=("$k"); done
  save_steps_csv=$(IFS=,; echo "${save_steps[*]}")
  inputs=(--weights "$out/weights.safetensors" --initial-state "$out/state.safetensors")
  # The reference trajectory: PyTorch on the cpu, TF32 off (qca.py's default), untimed for the report
  # (argparse lets the later --warmup-steps 0 win over one in EXTRA).
  if ! "$py" scripts/pytorch/qca.py "${pytorch_extra[@]}" --threads "$threads" --device cpu --warmup-steps 0 \
       "${inputs[@]}" --save-state "$out/reference.safetensors" ${save_steps_csv:+--save-steps "$save_steps_csv"} \
       --json "$out/pytorch-reference.json" >/dev/null 2>"$out/pytorch-reference.log"; then
    echo "compare.sh: the PyTorch reference run failed (log: $out/pytorch-reference.log):" >&2
    tail -n 5 "$out/pytorch-reference.log" >&2
    exit 1
  fi
fi
common=(--threads "$threads" --quiet)
[ "$bench" = qca ] && common=(--threads "$threads")
if [ "$bench" = qca ]; then
  :  # exported above
elif { if [ "$bench" = resnet18 ]; then  # the export run: one step; its warm-up, length and schedule are its own
         without --warmup-steps --max-steps --schedule -- -- "${extra[@]}"; export_extra=("${kept[@]}" --max-steps 1 --schedule constant)
       else without --warmup-steps -- -- "${extra[@]}"; export_extra=("${kept[@]}"); fi; } &&
     ! "$exe" "${common[@]}" "${export_extra[@]}" --warmup-steps 0 --save-init "$out/init.safetensors" \
     --export-data "$out/data.safetensors" --json "$out/export-run.json" >/dev/null 2>"$out/export-run.log"; then
  echo "compare.sh: exporting the initial weights and data failed (log: $out/export-run.log):" >&2
  tail -n 5 "$out/export-run.log" >&2
  exit 1
fi
ferrite_json=() pytorch_json=() compile_json=() channels_last_json=() spread_json=()
if [ "$bench" = resnet18 ] && [ "$threads" -gt 1 ]; then
  # PyTorch's own fp32 spread: one untimed run with 1 thread from the same inputs (compare.py --spread).
  for dev in "${devices[@]}"; do
    [ "$dev" = cpu ] || continue
    s=$out/pytorch-1thread-$dev.json
    run "PyTorch eager 1 thread (spread, $dev)" "$s" "$py" scripts/pytorch/resnet18.py --threads 1 --quiet \
      "${pytorch_extra[@]}" --device "$dev" --init-from "$out/init.safetensors" --data-from "$out/data.safetensors" --json "$s"
    [ -s "$s" ] && spread_json+=("$s")
  done
fi
for dev in "${devices[@]}"; do
  for i in $(seq 1 "$reps"); do
    echo "compare.sh: $dev repetition $i/$reps" >&2
    f=$out/ferrite-$dev-$i.json p=$out/pytorch-$dev-$i.json
    if [ "$bench" = qca ]; then
      run "ferrite ($dev, repetition $i)" "$f" "$exe" "${common[@]}" "${ferrite_extra[@]}" --device "$dev" \
        "${inputs[@]}" --reference-state "$out/reference.safetensors" --json "$f"
      run "PyTorch eager ($dev, repetition $i)" "$p" "$py" scripts/pytorch/qca.py "${common[@]}" \
        "${pytorch_extra[@]}" --device "$dev" "${inputs[@]}" --json "$p"
    else
    run "ferrite ($dev, repetition $i)" "$f" "${ferrite_launch[@]}" \
      "$exe" "${common[@]}" "${extra[@]}" --device "$dev" --init-from "$out/init.safetensors" --json "$f"
    run "PyTorch eager ($dev, repetition $i)" "$p" "${pytorch_launch[@]}" \
      "$py" "scripts/pytorch/$bench.py" "${common[@]}" "${pytorch_extra[@]}" "${ddp[@]}" --device "$dev" \
      --init-from "$out/init.safetensors" --data-from "$out/data.safetensors" --json "$p"
    fi
    [ -s "$f" ] && ferrite_json+=("$f")
    [ -s "$p" ] && pytorch_json+=("$p")
    if [ "$bench" = resnet18 ]; then
      l=$out/pytorch-channels-last-$dev-$i.json
      run "PyTorch eager channels_last ($dev, repetition $i)" "$l" "$py" scripts/pytorch/resnet18.py "${common[@]}" \
        "${pytorch_extra[@]}" --device "$dev" --channels-last \
        --init-from "$out/init.safetensors" --data-from "$out/data.safetensors" --json "$l"
      [ -s "$l" ] && channels_last_json+=("$l")
    fi
    if [ "$compile" = 1 ]; then
      c=$out/pytorch-compile-$dev-$i.json
      run "PyTorch torch.compile ($dev, repetition $i)" "$c" \
        "${pytorch_launch[@]}" "$py" "scripts/pytorch/$bench.py" "${common[@]}" "${pytorch_extra[@]}" "${ddp[@]}" \
        --device "$dev" --compile \
        --init-from "$out/init.safetensors" --data-from "$out/data.safetensors" --json "$c"
      [ -s "$c" ] && compile_json+=("$c")
    fi
  done
done
if [ ${#ferrite_json[@]} -eq 0 ] || [ ${#pytorch_json[@]} -eq 0 ]; then
  echo "compare.sh: no report: every $([ ${#ferrite_json[@]} -eq 0 ] && echo ferrite || echo PyTorch) run failed" \
       "without a JSON report (logs in $out)" >&2
  exit 1
fi
compile_args=()
[ ${#compile_json[@]} -gt 0 ] && compile_args=(--torch-compile "${compile_json[@]}")
[ ${#channels_last_json[@]} -gt 0 ] && compile_args+=(--channels-last "${channels_last_json[@]}")
[ ${#spread_json[@]} -gt 0 ] && compile_args+=(--spread "${spread_json[@]}")
command="scripts/compare.sh $bench --device $device --reps $reps"
[ "$ranks" -gt 1 ] && command+=" --ranks $ranks"
[ "$compile" = 1 ] && command+=" --torch-compile"
[ ${#extra[@]} -gt 0 ] && command+=" -- ${extra[*]}"
"$py" scripts/compare.py --ferrite "${ferrite_json[@]}" --pytorch "${pytorch_json[@]}" "${compile_args[@]}" \
  --out "$out" --title "$bench: ferrite vs PyTorch" --command "$command" || status=1
if [ ${#missing[@]} -gt 0 ]; then  # runs that crashed before writing JSON: compare.py never saw them
  {
    printf '\n## Runs without a JSON report\n\n'
    printf -- '- %s\n' "${missing[@]}"
    printf '\n**Result: FAIL** — %d run(s) ended without a JSON report (not counted in the result above).\n' \
      "${#missing[@]}"
  } | tee -a "$out/report.md"
fi
echo "compare.sh: report in $out/report.md" >&2
exit $status
