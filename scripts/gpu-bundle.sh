#!/usr/bin/env bash
# Builds what a GPU machine needs to check the CUDA backend, on this (GPU-less) machine, into
# build-gpu-bundle/carry/ (git-ignored; about 45 MiB): tests/test_cuda, bench/mnist, bench/qca and bench/resnet18 for sm_90,
# the shared libraries they need that a CUDA image may lack (TBB, fmt), Fashion-MNIST, and the
# `safetensors` Python wheel (abi3: any CPython >= 3.7) that scripts/pytorch/*.py import.
# The device machines have nvcc and PyTorch but not ferrite's Debian dependencies, and cannot download
# them, hence binaries. CPU code is built for x86-64-v3 (AVX2 + FMA), which any such host runs;
# cudart is linked statically and cuBLAS is opened at run time from the machine's CUDA.
#   scripts/gpu-bundle.sh            then run scripts/gpu-checks.sh there (docs/cuda-todo.md)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-gpu-bundle
carry=$build/carry
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dcuda=enabled -Dmpi=disabled -Dgpu_arch="${FERRITE_GPU_ARCH:-sm_90}" \
    -Dnative=false -Dcpp_args=-march=x86-64-v3 >/dev/null
fi
meson configure "$build" -Dmpi=disabled  # the device image has no Open MPI: MPI stays out of the bundle
ninja -C "$build" -j"${FERRITE_JOBS:-2}" tests/test_cuda bench/mnist bench/qca bench/resnet18
rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib" "$carry/data/fashion-mnist" "$carry/python"
cp "$build/tests/test_cuda" "$build/bench/mnist" "$build/bench/qca" "$build/bench/resnet18" "$carry/bin/"
# Every shared library outside the C runtime and libstdc++ (which the image has, newer).
ldd "$carry/bin/test_cuda" "$carry/bin/mnist" "$carry/bin/qca" "$carry/bin/resnet18" | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*|ld-linux*) ;;
    *) cp -L "$lib" "$carry/lib/" ;;
  esac
done
fm=/usr/share/datasets/fashion-mnist
if [ -d "$fm" ]; then cp "$fm"/*.gz "$carry/data/fashion-mnist/"; else echo "gpu-bundle: no $fm (apt-get install dataset-fashion-mnist); Fashion-MNIST checks will be skipped" >&2; fi
# The device image has PyTorch but maybe not safetensors, and no package index: carry the wheel, unpacked
# (gpu-checks.sh puts $carry/python on PYTHONPATH).
wheels=$(mktemp -d)
if python3 -m pip download -q --only-binary=:all: --no-deps --platform manylinux2014_x86_64 --python-version 3.10 \
     --implementation cp --abi abi3 -d "$wheels" safetensors >/dev/null 2>&1; then
  for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$carry/python"; done
else
  echo "gpu-bundle: could not download the safetensors wheel; PyTorch runs need it installed on the GPU machine" >&2
fi
rm -rf "$wheels"
du -sh "$carry" >&2
echo "gpu-bundle: $carry ready; on the GPU machine: scripts/gpu-checks.sh (carry $carry)" >&2
