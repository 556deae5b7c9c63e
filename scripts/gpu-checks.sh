#!/usr/bin/env bash
# The CUDA backend's checks, run ON A GPU MACHINE from the repository root, with the binaries that
# scripts/gpu-bundle.sh built elsewhere (build-gpu-bundle/carry, carried to the machine):
#   scripts/gpu-checks.sh tests      the cuda test suite: every kernel vs its CPU oracle, trainer vs CPU loop
#   scripts/gpu-checks.sh sanitize   compute-sanitizer memcheck / racecheck / initcheck / synccheck
#   scripts/gpu-checks.sh bench      bench/mnist --device cuda (synthetic, Fashion-MNIST; graphs on/off, TF32)
#   scripts/gpu-checks.sh compare    ferrite vs PyTorch on the GPU (eager and CUDA graphs), compare.py report
#   scripts/gpu-checks.sh qca        bench/qca --device cuda vs PyTorch eager at 128 and 256 (fp32, TF32 labelled),
#                                    accuracy against a PyTorch fp32 reference trajectory
#   scripts/gpu-checks.sh all        all five (about 12 minutes)
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
summary=$out/summary-$stage.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
# check NAME CMD...: runs CMD with its output in $work/NAME.log; records pass/fail, returns 0/1.
check() {
  local name=$1; shift
  local t0=$SECONDS rc=0
  "$@" >"$work/$name.log" 2>&1 || rc=$?
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
  if "$@" >"$work/$name.log" 2>&1; then say "FAIL  $name: exited 0, expected an error"; status=1
  else say "PASS  $name (refused: $(tail -n 1 "$work/$name.log" | cut -c1-200))"; fi
}
validate() {  # validate_json.py needs python's jsonschema; without it, say so instead of failing
  if "$py" -c 'import jsonschema' 2>/dev/null; then check "validate-$(basename "$1" .json)" "$py" scripts/validate_json.py "$1"
  else say "SKIP  validate $(basename "$1"): no jsonschema in $py (carry a wheel to validate)"; fi
}
metric() {  # metric FILE: one line of the JSON's key figures
  "$py" - "$1" <<'PY' | tee -a "$summary"
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("status") != "success":
    print(f"      {sys.argv[1].split('/')[-1]}: status {d.get('status')}: {d.get('message')}"); sys.exit()
m, q = d["metrics"], d["quality"]
print(f"      {sys.argv[1].split('/')[-1]}: {d['device'].get('name')} | {m['throughput']['value']:.0f} samples/s | "
      f"step p50 {m['latency_ms']['p50'] * 1e3:.1f} us p99 {m['latency_ms']['p99'] * 1e3:.1f} us | "
      f"peak device {m['peak_memory_mb'].get('device')} MiB | loss/epoch {[round(x, 5) for x in q['loss_per_epoch']]} | "
      f"test acc {q['test_accuracy']:.4f} | backend {d['framework'].get('backend')}")
PY
}

[ -x "$bin/test_cuda" ] || { echo "gpu-checks: no $bin/test_cuda: run scripts/gpu-bundle.sh on the build machine and carry $carry" >&2; exit 2; }
say "gpu-checks $stage: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
fm_args=()
[ -f "$carry/data/fashion-mnist/train-images-idx3-ubyte.gz" ] && fm_args=(--dataset fashion-mnist --data-dir "$carry/data/fashion-mnist" --samples 0 --test-samples 0)

if [ "$stage" = tests ] || [ "$stage" = all ]; then
  check test_cuda "$bin/test_cuda" --gtest_output="xml:$work/test_cuda.xml"
  grep -E "^\[==========\]|^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]+ test" "$work/test_cuda.log" |
    head -40 | tee -a "$summary"
fi

if [ "$stage" = sanitize ] || [ "$stage" = all ]; then
  if command -v compute-sanitizer >/dev/null; then
    small='AllBackends/BackendOps.*/cuda0'
    small+=':CudaMemory.*'
    for tool in memcheck racecheck initcheck synccheck; do
      check "sanitize-$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 "$bin/test_cuda" --gtest_filter="$small"
    done
  else
    say "SKIP  compute-sanitizer: not on PATH"
  fi
fi

if [ "$stage" = bench ] || [ "$stage" = all ]; then
  check mnist-cuda-synthetic "$bin/mnist" --device cuda --json "$work/mnist-cuda-synthetic.json"
  metric "$work/mnist-cuda-synthetic.json"; validate "$work/mnist-cuda-synthetic.json"
  check mnist-cuda-profile "$bin/mnist" --device cuda --profile 50 --json "$work/mnist-cuda-profile.json"
  metric "$work/mnist-cuda-profile.json"
  check mnist-cuda-tf32 "$bin/mnist" --device cuda --tf32 --json "$work/mnist-cuda-tf32.json"
  metric "$work/mnist-cuda-tf32.json"
  check mnist-cpu-synthetic "$bin/mnist" --device cpu --json "$work/mnist-cpu-synthetic.json"
  metric "$work/mnist-cpu-synthetic.json"
  expect_error mnist-cuda9 "$bin/mnist" --device cuda:9 --json "$work/mnist-cuda9.json"
  if [ ${#fm_args[@]} -gt 0 ]; then
    for batch in 32 256; do
      check "fmnist-cuda-b$batch" "$bin/mnist" --device cuda "${fm_args[@]}" --batch "$batch" --json "$work/fmnist-cuda-b$batch.json"
      metric "$work/fmnist-cuda-b$batch.json"
    done
    check fmnist-cpu-b32 "$bin/mnist" --device cpu "${fm_args[@]}" --epochs 2 --json "$work/fmnist-cpu-b32.json"
    metric "$work/fmnist-cpu-b32.json"
  else
    say "SKIP  Fashion-MNIST runs: not in $carry/data"
  fi
fi

if [ "$stage" = compare ] || [ "$stage" = all ]; then
  if "$py" -c 'import torch, safetensors; assert torch.cuda.is_available()' 2>/dev/null; then
    cmp=$work/compare
    mkdir -p "$cmp"
    data_args=("${fm_args[@]}")
    [ ${#data_args[@]} -eq 0 ] && data_args=(--samples 10000)
    check export "$bin/mnist" "${data_args[@]}" --epochs 5 --warmup-steps 0 --quiet --save-init "$cmp/init.safetensors" \
      --export-data "$cmp/data.safetensors" --json "$cmp/export-run.json"
    ferrite=() pytorch=()
    for i in 1 2 3; do  # alternate A B A B, as compare.sh does
      check "ferrite-cuda-$i" "$bin/mnist" "${data_args[@]}" --epochs 5 --device cuda --quiet \
        --init-from "$cmp/init.safetensors" --json "$cmp/ferrite-cuda-$i.json" && ferrite+=("$cmp/ferrite-cuda-$i.json")
      check "pytorch-cuda-$i" "$py" scripts/pytorch/mnist.py --epochs 5 --device cuda --quiet \
        --init-from "$cmp/init.safetensors" --data-from "$cmp/data.safetensors" --json "$cmp/pytorch-cuda-$i.json" \
        && pytorch+=("$cmp/pytorch-cuda-$i.json")
    done
    metric "$cmp/ferrite-cuda-1.json"; metric "$cmp/pytorch-cuda-1.json"
    check ferrite-cuda-graphs "$bin/mnist" "${data_args[@]}" --epochs 5 --device cuda --quiet --cuda-graphs \
      --init-from "$cmp/init.safetensors" --json "$cmp/ferrite-cuda-graphs.json"
    metric "$cmp/ferrite-cuda-graphs.json"
    check pytorch-cuda-graphs "$py" scripts/pytorch/mnist.py --epochs 5 --device cuda --quiet --cuda-graphs \
      --init-from "$cmp/init.safetensors" --data-from "$cmp/data.safetensors" --json "$cmp/pytorch-cuda-graphs.json"
    metric "$cmp/pytorch-cuda-graphs.json"
    rm -f "$cmp"/*.safetensors  # large; the JSONs say everything
    check compare-report "$py" scripts/compare.py --ferrite "${ferrite[@]}" --pytorch "${pytorch[@]}" --out "$cmp" \
      --title "mnist: ferrite vs PyTorch (cuda)" --command "scripts/gpu-checks.sh compare"
    grep -E "Result|parity|ratio|FAIL" "$cmp/report.md" 2>/dev/null | head -20 | tee -a "$summary"
  else
    say "SKIP  compare: $py has no torch with CUDA"
  fi
fi

if [ "$stage" = qca ] || [ "$stage" = all ]; then
  check test_cuda_conv "$bin/test_cuda" --gtest_filter='*Conv*:*GroupNorm*:*MaxPool*:*Complex*'
  grep -E "^\[ info \]|^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]+ test" "$work/test_cuda_conv.log" | tee -a "$summary"
  qca_metric() {  # qca_metric FILE LABEL: one line of the JSON's key figures
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
  if "$py" -c 'import torch, safetensors; assert torch.cuda.is_available()' 2>/dev/null; then have_torch=1; else have_torch=0
    say "SKIP  PyTorch qca runs: $py has no torch with CUDA or no safetensors"; fi
  for grid in 128 256; do
    q=$work/qca-$grid
    mkdir -p "$q"
    inputs=(--grid "$grid" --weights "$q/weights.safetensors" --initial-state "$q/state.safetensors")
    # The law (outc and GroupNorm not tiny, so every layer shapes psi) and the initial state, from ferrite.
    check "qca-export-$grid" "$bin/qca" --grid "$grid" --no-small-outc --steps 1 --warmup-steps 0 \
      --save-weights "$q/weights.safetensors" --save-state "$q/state.safetensors" --json "$q/export.json" || continue
    ref=()
    if [ $have_torch = 1 ] && check "qca-reference-$grid" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda \
         --warmup-steps 0 --steps 100 --save-steps 1,10 --save-state "$q/reference.safetensors" --json "$q/reference.json"; then
      ref=(--reference-state "$q/reference.safetensors")
    fi
    ferrite=() pytorch=()
    for i in 1 2 3; do  # alternating repetitions; fp32 (TF32 off) on both sides
      check "qca-ferrite-$grid-$i" "$bin/qca" "${inputs[@]}" --device cuda "${ref[@]}" --json "$q/ferrite-cuda-$i.json" &&
        ferrite+=("$q/ferrite-cuda-$i.json")
      [ $have_torch = 1 ] && check "qca-pytorch-$grid-$i" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda \
        --json "$q/pytorch-cuda-$i.json" && pytorch+=("$q/pytorch-cuda-$i.json")
    done
    for f in "${ferrite[@]}"; do qca_metric "$f" "ferrite fp32 $grid ${f##*-}"; done
    for f in "${pytorch[@]}"; do qca_metric "$f" "PyTorch eager fp32 $grid ${f##*-}"; done
    [ ${#ferrite[@]} -gt 0 ] && validate "${ferrite[0]}"
    check "qca-ferrite-im2col-$grid" "$bin/qca" "${inputs[@]}" --device cuda --gpu-conv im2col "${ref[@]}" \
      --json "$q/ferrite-im2col.json" && qca_metric "$q/ferrite-im2col.json" "ferrite fp32 im2col convs $grid"
    check "qca-ferrite-profile-$grid" "$bin/qca" "${inputs[@]}" --device cuda --steps 10 --profile 20 \
      --json "$q/ferrite-profile.json" && grep -A14 "^profile" "$work/qca-ferrite-profile-$grid.log" | tee -a "$summary"
    check "qca-ferrite-tf32-$grid" "$bin/qca" "${inputs[@]}" --device cuda --tf32 "${ref[@]}" --json "$q/ferrite-tf32.json" &&
      qca_metric "$q/ferrite-tf32.json" "ferrite TF32 $grid (labelled: not fp32)"
    if [ $have_torch = 1 ]; then
      check "qca-pytorch-tf32-$grid" "$py" scripts/pytorch/qca.py "${inputs[@]}" --device cuda --allow-tf32 \
        --json "$q/pytorch-tf32.json" && qca_metric "$q/pytorch-tf32.json" "PyTorch eager TF32 $grid (labelled: not fp32)"
      if [ ${#ferrite[@]} -gt 0 ] && [ ${#pytorch[@]} -gt 0 ]; then
        check "qca-report-$grid" "$py" scripts/compare.py --ferrite "${ferrite[@]}" --pytorch "${pytorch[@]}" --out "$q" \
          --title "qca $grid: ferrite vs PyTorch (cuda, fp32)" --command "scripts/gpu-checks.sh qca"
        grep -E "Result|ratio|FAIL" "$q/report.md" 2>/dev/null | head -10 | tee -a "$summary"
      fi
    fi
    rm -f "$q"/*.safetensors  # 256^2 states are 4 MiB each; the JSONs say everything
  done
fi

tar czf "$out/gpu-checks-$stage.tgz" -C "$work" . 2>/dev/null
say "gpu-checks $stage: $([ $status = 0 ] && echo PASS || echo FAIL); logs and JSON in $out/gpu-checks-$stage.tgz"
rm -rf "$work"
exit $status
