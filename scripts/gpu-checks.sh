#!/usr/bin/env bash
# The CUDA backend's checks, run ON A GPU MACHINE from the repository root, with the binaries that
# scripts/gpu-bundle.sh built elsewhere (build-gpu-bundle/carry, carried to the machine):
#   scripts/gpu-checks.sh tests      the cuda test suite: every kernel vs its CPU oracle, trainer vs CPU loop
#   scripts/gpu-checks.sh sanitize   compute-sanitizer memcheck / racecheck / initcheck / synccheck
#   scripts/gpu-checks.sh bench      bench/mnist --device cuda (synthetic, Fashion-MNIST; graphs on/off, TF32)
#   scripts/gpu-checks.sh compare    ferrite vs PyTorch on the GPU (eager and CUDA graphs), compare.py report
#   scripts/gpu-checks.sh qca        bench/qca --device cuda vs PyTorch eager at 128 and 256 (fp32, TF32 labelled),
#                                    accuracy against a PyTorch fp32 reference trajectory
#   scripts/gpu-checks.sh resnet18   bench/resnet18 --device cuda vs PyTorch eager (NCHW and channels_last) from
#                                    the same weights, images and crops: fp32 (TF32 off), a labelled TF32 pair, profile
#   scripts/gpu-checks.sh all        everything, most important first, inside a time budget (default 450 s:
#                                    a device lease is 15 minutes in all): tests, memcheck on a short subset,
#                                    mnist vs PyTorch (eager and CUDA graphs, default config, batch 4096,
#                                    Fashion-MNIST, a labelled TF32 pair), resnet18, qca 128^2 and 256^2, then the rest
# FERRITE_GPU_BUDGET_S=N sets the budget (0: none). A check that would start after it is SKIPped (what ran
# is kept); every check also has its own time limit, so a hang costs minutes, not the lease.
# Results go to $OUT (the device tool's output folder) or /tmp/ferrite-gpu: one summary.txt and one
# .tgz of every log and JSON. Exit status: non-zero if a check failed. Docs: docs/cuda-todo.md.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
carry=${FERRITE_GPU_CARRY:-build-gpu-bundle/carry}
bin=$carry/bin
out=${OUT:-/tmp/ferrite-gpu}
work=$(mktemp -d /tmp/ferrite-gpu-XXXXXX)
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -d "$carry/python" ] && export PYTHONPATH=$PWD/$carry/python${PYTHONPATH:+:$PYTHONPATH}  # the safetensors wheel
py=${FERRITE_PYTHON:-python3}
status=0
budget=${FERRITE_GPU_BUDGET_S:-450}
limit=${FERRITE_CHECK_LIMIT_S:-150}  # per check, seconds
summary=$out/summary-$stage.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
# over_budget NAME: true (and says SKIP) when the time budget is spent.
over_budget() {
  if [ "$budget" -gt 0 ] && [ $SECONDS -ge "$budget" ]; then
    say "SKIP  $1: time budget of $budget s spent ($SECONDS s)"; return 0
  fi
  return 1
}
# run_limited CMD...: CMD under the per-check limit, cut to what is left of the budget (at least 20 s).
run_limited() {
  local lim=$limit
  if [ "$budget" -gt 0 ]; then
    local left=$((budget - SECONDS + 30))
    [ $left -lt $lim ] && lim=$left
    [ $lim -lt 20 ] && lim=20
  fi
  timeout -k 5 "$lim" "$@"
}
# check NAME CMD...: runs CMD with its output in $work/NAME.log; records pass/fail, returns 0/1.
check() {
  local name=$1; shift
  over_budget "$name" && return 1
  local t0=$SECONDS rc=0
  run_limited "$@" >"$work/$name.log" 2>&1 || rc=$?
  if [ $rc = 0 ]; then
    say "PASS  $name ($((SECONDS - t0)) s)"
    return 0
  fi
  say "FAIL  $name (exit $rc, $((SECONDS - t0)) s): $(tail -n 3 "$work/$name.log" | tr '\n' ' ' | cut -c1-400)"
  status=1
  return 1
}
# expect_error NAME CMD...: CMD must exit non-zero (a refused input).
expect_error() {
  local name=$1; shift
  over_budget "$name" && return
  if run_limited "$@" >"$work/$name.log" 2>&1; then say "FAIL  $name: exited 0, expected an error"; status=1
  else say "PASS  $name (refused: $(tail -n 1 "$work/$name.log" | cut -c1-200))"; fi
}
validate() {  # validate_json.py needs python's jsonschema; without it, say so instead of failing
  if "$py" -c 'import jsonschema' 2>/dev/null; then check "validate-$(basename "$1" .json)" "$py" scripts/validate_json.py "$1"
  else say "SKIP  validate $(basename "$1"): no jsonschema in $py (carry a wheel to validate)"; fi
}
metric() {  # metric FILE: one line of the JSON's key figures
  [ -f "$1" ] || return 0
  "$py" - "$1" <<'PY' | tee -a "$summary"
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("status") != "success":
    print(f"      {sys.argv[1].split('/')[-1]}: status {d.get('status')}: {d.get('message')}"); sys.exit()
m, q = d["metrics"], d["quality"]
print(f"      {sys.argv[1].split('/')[-1]}: {d['device'].get('name')} | {m['throughput']['value']:.0f} {m['throughput']['unit']} | "
      f"step p50 {m['latency_ms']['p50'] * 1e3:.1f} us p99 {m['latency_ms']['p99'] * 1e3:.1f} us | "
      f"peak device {m['peak_memory_mb'].get('device')} MiB | loss/epoch {[round(x, 5) for x in q['loss_per_epoch']]} | "
      f"test acc {q['test_accuracy']:.4f} | backend {d['framework'].get('backend')}")
PY
}

[ -x "$bin/test_cuda" ] || { echo "gpu-checks: no $bin/test_cuda: run scripts/gpu-bundle.sh on the build machine and carry $carry" >&2; exit 2; }
say "gpu-checks $stage: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
fm_args=()
[ -f "$carry/data/fashion-mnist/train-images-idx3-ubyte.gz" ] && fm_args=(--dataset fashion-mnist --data-dir "$carry/data/fashion-mnist" --samples 0 --test-samples 0)

have_torch=0
"$py" -c 'import torch, safetensors; assert torch.cuda.is_available()' 2>/dev/null && have_torch=1
# NCCL for the data-parallel GPU path (test Nccl.*): the toolkit's, else PyTorch's nvidia-nccl wheel's.
if [ -z "${FERRITE_NCCL:-}" ]; then
  for so in /usr/local/cuda/lib/libnccl.so.2 /usr/local/cuda/lib64/libnccl.so.2 \
            "$("$py" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null)"; do
    [ -n "$so" ] && [ -f "$so" ] && { export FERRITE_NCCL=$so; break; }
  done
fi
say "NCCL for the data-parallel GPU path: ${FERRITE_NCCL:-not found (test Nccl.* will skip)}"

stage_tests() {  # every CUDA test: backend-ops on cuda:0 vs the f64 reference, allocator, training, graphs
  check test_cuda "$bin/test_cuda" --gtest_output="xml:$work/test_cuda.xml"
  grep -E "^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]+ test" "$work/test_cuda.log" |
    head -40 | tee -a "$summary"
}

# Not the two tests whose failing CUDA API calls are the point (a missing device, a request larger than the
# card): memcheck counts each as an error (seen on an H200, 2026-12-04: 8 and 4 API errors, no memory errors).
sanitize_filter='AllBackends/BackendOps.*/cuda0:CudaMemory.*'
sanitize_filter+=':-CudaMemory.MissingDeviceIsReportedByEveryEntryPoint:CudaMemory.OutOfMemoryNamesTheRequestAndTheFreeMemory'
stage_sanitize() {  # TOOLS...: compute-sanitizer over the backend-ops cuda0 cases and the allocator tests
  if ! command -v compute-sanitizer >/dev/null; then say "SKIP  compute-sanitizer: not on PATH"; return; fi
  for tool in "$@"; do
    check "sanitize-$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 "$bin/test_cuda" --gtest_filter="$sanitize_filter"
    grep -E "ERROR SUMMARY|^\[  PASSED  \]|^\[  FAILED  \]" "$work/sanitize-$tool.log" | head -5 | tee -a "$summary"
  done
}

# mnist_pair TAG REPS FERRITE_ARGS -- PYTORCH_ARGS: exports init + data once, then REPS alternating rounds of
# ferrite eager, PyTorch eager, ferrite --cuda-graphs, PyTorch --cuda-graphs; compare.py reports (eager vs
# eager, and ferrite eager vs PyTorch graphs: the pair the criteria name).
mnist_pair() {
  local tag=$1 reps=$2; shift 2
  local fargs=() pargs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do fargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  pargs=("$@")
  local cmp=$work/mnist-$tag
  mkdir -p "$cmp"
  check "mnist-$tag-export" "$bin/mnist" "${fargs[@]}" --warmup-steps 0 --quiet --save-init "$cmp/init.safetensors" \
    --export-data "$cmp/data.safetensors" --json "$cmp/export-run.json" || return
  local from=(--init-from "$cmp/init.safetensors") pfrom=(--init-from "$cmp/init.safetensors" --data-from "$cmp/data.safetensors")
  local fe=() pe=() fg=() pg=()
  for i in $(seq 1 "$reps"); do
    check "mnist-$tag-ferrite-$i" "$bin/mnist" "${fargs[@]}" --device cuda --no-cuda-graphs --quiet "${from[@]}" \
      --json "$cmp/ferrite-$i.json" &&
      fe+=("$cmp/ferrite-$i.json")
    [ $have_torch = 1 ] && check "mnist-$tag-pytorch-$i" "$py" scripts/pytorch/mnist.py "${pargs[@]}" --device cuda --quiet \
      "${pfrom[@]}" --json "$cmp/pytorch-$i.json" && pe+=("$cmp/pytorch-$i.json")
    check "mnist-$tag-ferrite-graphs-$i" "$bin/mnist" "${fargs[@]}" --device cuda --quiet --cuda-graphs "${from[@]}" \
      --json "$cmp/ferrite-graphs-$i.json" && fg+=("$cmp/ferrite-graphs-$i.json")
    [ $have_torch = 1 ] && check "mnist-$tag-pytorch-graphs-$i" "$py" scripts/pytorch/mnist.py "${pargs[@]}" --device cuda \
      --quiet --cuda-graphs "${pfrom[@]}" --json "$cmp/pytorch-graphs-$i.json" && pg+=("$cmp/pytorch-graphs-$i.json")
  done
  for f in "${fe[@]}" "${pe[@]}" "${fg[@]}" "${pg[@]}"; do metric "$f"; done
  [ ${#fe[@]} -gt 0 ] && validate "${fe[0]}"
  rm -f "$cmp"/*.safetensors  # large; the JSONs say everything
  if [ ${#fe[@]} -gt 0 ] && [ ${#pe[@]} -gt 0 ]; then
    check "mnist-$tag-report-eager" "$py" scripts/compare.py --ferrite "${fe[@]}" --pytorch "${pe[@]}" --out "$cmp/eager" \
      --title "mnist $tag: ferrite eager vs PyTorch eager (cuda, fp32)" --command "scripts/gpu-checks.sh all"
    grep -E "Result|parity|ratio|FAIL" "$cmp/eager/report.md" 2>/dev/null | head -12 | tee -a "$summary"
  fi
  if [ ${#fg[@]} -gt 0 ] && [ ${#pg[@]} -gt 0 ]; then
    check "mnist-$tag-report-graphs" "$py" scripts/compare.py --ferrite "${fg[@]}" --pytorch "${pg[@]}" --out "$cmp/graphs" \
      --title "mnist $tag: ferrite --cuda-graphs vs PyTorch --cuda-graphs (cuda, fp32)" --command "scripts/gpu-checks.sh all"
    grep -E "Result|parity|ratio|FAIL" "$cmp/graphs/report.md" 2>/dev/null | head -12 | tee -a "$summary"
  fi
}

stage_mnist() {  # ferrite vs PyTorch on the GPU
  [ $have_torch = 1 ] || say "SKIP  PyTorch mnist runs: $py has no torch with CUDA or no safetensors"
  mnist_pair default 3 --  # the default config: synthetic 1,000 samples, batch 32, 5 epochs, Adam
  if [ ${#fm_args[@]} -gt 0 ]; then
    mnist_pair b4096 3 "${fm_args[@]}" --batch 4096 --epochs 10 -- --batch 4096 --epochs 10
    check mnist-b4096-profile "$bin/mnist" --device cuda "${fm_args[@]}" --batch 4096 --epochs 1 --profile 20 \
      --json "$work/mnist-b4096-profile.json" && profile_table "$work/mnist-b4096-profile.json"
    mnist_pair fmnist 1 "${fm_args[@]}" -- --dataset fashion-mnist  # 9,375 steps: accuracy and long-run parity
  else
    say "SKIP  Fashion-MNIST runs: not in $carry/data"
  fi
  # One labelled TF32 pair (not fp32) on the default config.
  local t=$work/mnist-tf32
  mkdir -p "$t"
  check mnist-tf32-export "$bin/mnist" --warmup-steps 0 --quiet --save-init "$t/init.safetensors" \
    --export-data "$t/data.safetensors" --json "$t/export-run.json" || return
  check mnist-tf32-ferrite "$bin/mnist" --device cuda --no-cuda-graphs --tf32 --quiet --init-from "$t/init.safetensors" \
    --json "$t/ferrite-tf32.json" && metric "$t/ferrite-tf32.json"
  [ $have_torch = 1 ] && check mnist-tf32-pytorch "$py" scripts/pytorch/mnist.py --device cuda --allow-tf32 --quiet \
    --init-from "$t/init.safetensors" --data-from "$t/data.safetensors" --json "$t/pytorch-tf32.json" &&
    metric "$t/pytorch-tf32.json"
  rm -f "$t"/*.safetensors
}

stage_bench() {  # bench/mnist on its own: profile, CPU beside it, a refused device, Fashion-MNIST batch 256
  check mnist-cuda-synthetic "$bin/mnist" --device cuda --json "$work/mnist-cuda-synthetic.json" &&
    metric "$work/mnist-cuda-synthetic.json"  # the defaults: CUDA graphs on
  check mnist-cuda-eager "$bin/mnist" --device cuda --no-cuda-graphs --json "$work/mnist-cuda-eager.json" &&
    metric "$work/mnist-cuda-eager.json"
  check mnist-cuda-profile "$bin/mnist" --device cuda --profile 50 --json "$work/mnist-cuda-profile.json" &&
    profile_table "$work/mnist-cuda-profile.json"
  check mnist-cpu-synthetic "$bin/mnist" --device cpu --json "$work/mnist-cpu-synthetic.json" &&
    metric "$work/mnist-cpu-synthetic.json"
  expect_error mnist-cuda9 "$bin/mnist" --device cuda:9 --json "$work/mnist-cuda9.json"
  if [ ${#fm_args[@]} -gt 0 ]; then
    check fmnist-cuda-b256 "$bin/mnist" --device cuda "${fm_args[@]}" --batch 256 --json "$work/fmnist-cuda-b256.json" &&
      metric "$work/fmnist-cuda-b256.json"
    check fmnist-cpu-b32 "$bin/mnist" --device cpu "${fm_args[@]}" --epochs 2 --json "$work/fmnist-cpu-b32.json" &&
      metric "$work/fmnist-cpu-b32.json"
  fi
}

profile_table() {  # profile_table FILE: bench/mnist's extra.profile, one line per op
  [ -f "$1" ] || return 0
  "$py" - "$1" <<'PY' | tee -a "$summary"
import json, sys
d = json.load(open(sys.argv[1]))
p = (d.get("extra") or {}).get("profile") or {}
print(f"      profile {sys.argv[1].split('/')[-1]} ({p.get('steps')} steps, {p.get('method')}):")
for o in p.get("ops", []):
    print(f"        {o['op']:<24} {o['ms_per_step'] * 1e3:8.1f} us/step {o['share'] * 100:5.1f} % {o['calls']:6d} calls")
PY
}

qca_metric() {  # qca_metric FILE LABEL: one line of the JSON's key figures
  [ -f "$1" ] || return 0
  "$py" - "$1" "$2" <<'PY' | tee -a "$summary"
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("status") != "success":
    print(f"      {sys.argv[2]}: status {d.get('status')}: {d.get('message')}"); sys.exit()
m, q = d["metrics"], d["quality"]
rel = q.get("rel_l2_vs_reference")
print(f"      {sys.argv[2]}: {d['device'].get('name')} | {m['throughput']['value']:.2f} steps/s | "
      f"step p50 {m['latency_ms']['p50']:.3f} ms p95 {m['latency_ms']['p95']:.3f} ms | {m.get('gflops', 0):.0f} GFLOP/s | "
      f"peak device {m['peak_memory_mb'].get('device')} MiB | max|norm-1| {q.get('max_norm_error')} | "
      f"rel L2 vs ref {rel} {dict(zip(q.get('rel_l2_steps', []), q.get('rel_l2_by_step', [])))}")
PY
}

stage_qca() {  # GRIDS...: bench/qca on cuda vs PyTorch eager, fp32 and a labelled TF32 pair, accuracy vs PyTorch
  [ $have_torch = 1 ] || say "SKIP  PyTorch qca runs: $py has no torch with CUDA or no safetensors"
  for grid in "$@"; do
    local q=$work/qca-$grid
    mkdir -p "$q"
    local inputs=(--grid "$grid" --weights "$q/weights.safetensors" --initial-state "$q/state.safetensors")
    # The law (outc and GroupNorm not tiny, so every layer shapes psi) and the initial state, from ferrite.
    check "qca-export-$grid" "$bin/qca" --grid "$grid" --no-small-outc --steps 1 --warmup-steps 0 \
      --save-weights "$q/weights.safetensors" --save-state "$q/state.safetensors" --json "$q/export.json" || continue
    local ref=()
    if [ $have_torch = 1 ] && check "qca-reference-$grid" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda \
         --warmup-steps 0 --steps 100 --save-steps 1,10 --save-state "$q/reference.safetensors" --json "$q/reference.json"; then
      ref=(--reference-state "$q/reference.safetensors")
    fi
    local ferrite=() pytorch=()
    for i in 1 2 3; do  # alternating repetitions; fp32 (TF32 off) on both sides
      check "qca-ferrite-$grid-$i" "$bin/qca" "${inputs[@]}" --device cuda "${ref[@]}" --json "$q/ferrite-cuda-$i.json" &&
        ferrite+=("$q/ferrite-cuda-$i.json")
      [ $have_torch = 1 ] && check "qca-pytorch-$grid-$i" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda \
        --json "$q/pytorch-cuda-$i.json" && pytorch+=("$q/pytorch-cuda-$i.json")
    done
    for f in "${ferrite[@]}"; do qca_metric "$f" "ferrite fp32 $grid ${f##*-}"; done
    for f in "${pytorch[@]}"; do qca_metric "$f" "PyTorch eager fp32 $grid ${f##*-}"; done
    [ ${#ferrite[@]} -gt 0 ] && validate "${ferrite[0]}"
    if [ ${#ferrite[@]} -gt 0 ] && [ ${#pytorch[@]} -gt 0 ]; then
      check "qca-report-$grid" "$py" scripts/compare.py --ferrite "${ferrite[@]}" --pytorch "${pytorch[@]}" --out "$q" \
        --title "qca $grid: ferrite vs PyTorch (cuda, fp32)" --command "scripts/gpu-checks.sh qca"
      grep -E "Result|ratio|FAIL" "$q/report.md" 2>/dev/null | head -10 | tee -a "$summary"
    fi
    check "qca-ferrite-tf32-$grid" "$bin/qca" "${inputs[@]}" --device cuda --tf32 "${ref[@]}" --json "$q/ferrite-tf32.json" &&
      qca_metric "$q/ferrite-tf32.json" "ferrite TF32 $grid (labelled: not fp32)"
    [ $have_torch = 1 ] && check "qca-pytorch-tf32-$grid" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda \
      --allow-tf32 --json "$q/pytorch-tf32.json" && qca_metric "$q/pytorch-tf32.json" "PyTorch eager TF32 $grid (labelled: not fp32)"
    check "qca-ferrite-im2col-$grid" "$bin/qca" "${inputs[@]}" --device cuda --gpu-conv im2col "${ref[@]}" \
      --json "$q/ferrite-im2col.json" && qca_metric "$q/ferrite-im2col.json" "ferrite fp32 im2col convs $grid"
    check "qca-ferrite-profile-$grid" "$bin/qca" "${inputs[@]}" --device cuda --steps 10 --profile 20 \
      --json "$q/ferrite-profile.json" && grep -A14 "^profile" "$work/qca-ferrite-profile-$grid.log" | tee -a "$summary"
    rm -f "$q"/*.safetensors  # 256^2 states are 4 MiB each; the JSONs say everything
  done
}

stage_resnet() {  # ResNet-18 on cuda vs PyTorch eager, batch 128, synthetic CIFAR-shaped images (no data to carry)
  [ $have_torch = 1 ] || say "SKIP  PyTorch resnet18 runs: $py has no torch with CUDA or no safetensors"
  local r=$work/resnet18
  mkdir -p "$r"
  local data=(--train-samples 5120 --test-samples 1000) steps=(--max-steps 30 --schedule-steps 3900 --warmup-steps 3)
  check resnet18-export "$bin/resnet18" "${data[@]}" --max-steps 1 --schedule constant --warmup-steps 0 --quiet \
    --save-init "$r/init.safetensors" --export-data "$r/data.safetensors" --json "$r/export.json" || return 0
  local from=(--init-from "$r/init.safetensors") pfrom=(--init-from "$r/init.safetensors" --data-from "$r/data.safetensors")
  local fe=() pe=() pl=()
  for i in 1 2; do  # alternating repetitions, fp32 (TF32 off) on both sides
    check "resnet18-ferrite-$i" "$bin/resnet18" "${data[@]}" "${steps[@]}" --device cuda --quiet "${from[@]}" \
      --json "$r/ferrite-cuda-$i.json" && fe+=("$r/ferrite-cuda-$i.json") && metric "$r/ferrite-cuda-$i.json"
    if [ $have_torch = 1 ]; then
      check "resnet18-pytorch-$i" "$py" scripts/pytorch/resnet18.py "${steps[@]}" --device cuda --quiet "${pfrom[@]}" \
        --json "$r/pytorch-cuda-$i.json" && pe+=("$r/pytorch-cuda-$i.json") && metric "$r/pytorch-cuda-$i.json"
      check "resnet18-pytorch-cl-$i" "$py" scripts/pytorch/resnet18.py "${steps[@]}" --device cuda --channels-last --quiet \
        "${pfrom[@]}" --json "$r/pytorch-cl-cuda-$i.json" && pl+=("$r/pytorch-cl-cuda-$i.json") && metric "$r/pytorch-cl-cuda-$i.json"
    fi
  done
  [ ${#fe[@]} -gt 0 ] && validate "${fe[0]}"
  if [ ${#fe[@]} -gt 0 ] && [ ${#pe[@]} -gt 0 ]; then
    check resnet18-report "$py" scripts/compare.py --ferrite "${fe[@]}" --pytorch "${pe[@]}" --channels-last "${pl[@]}" \
      --out "$r/report" --title "resnet18: ferrite vs PyTorch eager (cuda, fp32)" --command "scripts/gpu-checks.sh resnet18"
    grep -E "Result|speed|step 9|FAIL" "$r/report/report.md" 2>/dev/null | head -12 | tee -a "$summary"
  fi
  check resnet18-ferrite-tf32 "$bin/resnet18" "${data[@]}" "${steps[@]}" --device cuda --tf32 --quiet "${from[@]}" \
    --json "$r/ferrite-tf32.json" && metric "$r/ferrite-tf32.json"
  [ $have_torch = 1 ] && check resnet18-pytorch-tf32 "$py" scripts/pytorch/resnet18.py "${steps[@]}" --device cuda \
    --allow-tf32 --channels-last --quiet "${pfrom[@]}" --json "$r/pytorch-tf32.json" && metric "$r/pytorch-tf32.json"
  check resnet18-ferrite-profile "$bin/resnet18" "${data[@]}" --max-steps 5 --schedule constant --device cuda --quiet \
    --profile 5 "${from[@]}" --json "$r/ferrite-profile.json" && profile_table "$r/ferrite-profile.json"
  expect_error resnet18-cuda9 "$bin/resnet18" --device cuda:9 --json "$r/cuda9.json"
  rm -f "$r"/*.safetensors
}

case $stage in
  tests) stage_tests ;;
  sanitize) stage_sanitize memcheck racecheck initcheck synccheck ;;
  bench) stage_bench ;;
  compare|mnist) stage_mnist ;;
  memcheck) stage_sanitize memcheck ;;
  qca) check test_cuda_conv "$bin/test_cuda" --gtest_filter='*Conv*:*GroupNorm*:*MaxPool*:*Complex*'; stage_qca 128 256 ;;
  resnet18) check test_cuda_batch "$bin/test_cuda" --gtest_filter='*Cnhw*:*BatchNorm*:*GlobalAvg*'; stage_resnet ;;
  all)
    stage_tests
    stage_sanitize memcheck
    stage_mnist
    stage_resnet
    stage_qca 128 256
    stage_bench
    stage_sanitize racecheck initcheck synccheck ;;
  *) echo "gpu-checks: unknown stage '$stage' (tests, sanitize, bench, compare, qca, resnet18, all)" >&2; exit 2 ;;
esac

tar czf "$out/gpu-checks-$stage.tgz" -C "$work" . 2>/dev/null
say "gpu-checks $stage: $([ $status = 0 ] && echo PASS || echo FAIL); logs and JSON in $out/gpu-checks-$stage.tgz"
rm -rf "$work"
exit $status
