#!/usr/bin/env bash
# README command one: install, build, and train the MNIST-shaped MLP with the default config.
# Extra arguments go to bench/mnist (e.g. --dataset fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
mkdir -p results
exec ./"${FERRITE_BUILD_DIR:-build}"/bench/mnist --json results/mnist.json "$@"
