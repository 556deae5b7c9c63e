#pragma once
// The whole library in one include. Convenient for examples and quick programs; a project that cares
// about compile time includes only the headers it uses (each one compiles on its own).
//
// Kept complete by the `umbrella-complete` test (tests/headers): every public header is listed here.
// Compiles with g++ alone and under nvcc (the `nvcc-umbrella` test); no CUDA types anywhere in here.

// core: Result/Error, Shape, DType, Device, Tensor and its views, Philox RNG
#include "ferrite/core/macros.hpp"
#include "ferrite/core/error.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"
#include "ferrite/core/dtype.hpp"
#include "ferrite/core/device.hpp"
#include "ferrite/core/tensor.hpp"
#include "ferrite/core/rng.hpp"

// ops: shape-checked operations, dispatched to the backends
#include "ferrite/ops/transpose.hpp"
#include "ferrite/ops/gemm.hpp"
#include "ferrite/ops/nn_ops.hpp"
#include "ferrite/ops/chw.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/group_norm_groups.hpp"
#include "ferrite/ops/norm.hpp"
#include "ferrite/ops/pool.hpp"

// backend/cpu: packed xsimd SGEMM on TBB, thread control, scalar reference oracles
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/cpu/gemm_kernel.hpp"
#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/winograd.hpp"
#include "ferrite/backend/cpu/reference/gemm.hpp"
#include "ferrite/backend/cpu/reference/nn_ops.hpp"
#include "ferrite/backend/cpu/reference/conv.hpp"

// backends available to this build and machine; the CUDA backend's host API (device queries, memory
// statistics, per-kernel entry points, the GPU MLP trainer; stubs without FERRITE_WITH_CUDA)
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/backend/winograd_f23.hpp"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/ops.hpp"
#include "ferrite/backend/cuda/mlp_trainer.hpp"
#include "ferrite/backend/cuda/qca.hpp"

// nn: modules with explicit forward/backward, parameters, PyTorch inits, state dict
#include "ferrite/nn/parameter.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/nn/init.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/nn/activation.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/sequential.hpp"
#include "ferrite/nn/state_dict.hpp"

// optim: SGD, Adam, AdamW (PyTorch's formulas), their scalar oracles, and a by-name factory
#include "ferrite/optim/optimizer.hpp"
#include "ferrite/optim/sgd.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/reference.hpp"
#include "ferrite/optim/factory.hpp"

// data: datasets, the synthetic MNIST-shaped set, IDX (Fashion-MNIST) files, batching
#include "ferrite/data/dataset.hpp"
#include "ferrite/data/synthetic.hpp"
#include "ferrite/data/idx.hpp"
#include "ferrite/data/loader.hpp"

// io: the atomic file writer; safetensors and the f16/bf16 conversions it needs; PNG pictures (qca
// density maps)
#include "ferrite/io/file.hpp"
#include "ferrite/io/half.hpp"
#include "ferrite/io/png.hpp"
#include "ferrite/io/safetensors.hpp"

// train: the classifier training loop and evaluation
#include "ferrite/train/classifier.hpp"

// models: ready-made networks
#include "ferrite/models/mlp.hpp"
#include "ferrite/models/qca.hpp"

// bench: timing, statistics, memory, environment, the JSON report
#include "ferrite/bench/timer.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/harness.hpp"
#include "ferrite/bench/cuda_device.hpp"
