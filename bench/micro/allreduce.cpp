// micro_allreduce: the gradient all-reduce of train/distributed.hpp against MPI_Allreduce, on a flat
// f32 buffer (default: the MLP's 109,440 padded parameters), under mpirun:
//
//   mpirun -np 2 build/bench/micro_allreduce [elements] [iterations]
//
// Prints, on rank 0, µs per call and the bus bandwidth (2·(world-1)/world · bytes / time, NCCL's
// convention) of ProcessGroup::all_reduce_mean (MPI_Alltoall + rank-ordered sum + MPI_Allgather) and
// of MPI_Allreduce(MPI_SUM) + a scale, and checks that both give the mean.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ferrite/train/distributed.hpp"

using namespace ferrite;

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 109'440;
  const int iterations = argc > 2 ? std::atoi(argv[2]) : 2000;
  if (n <= 0 || iterations <= 0) {
    std::fprintf(stderr, "usage: micro_allreduce [elements > 0] [iterations > 0]\n");
    return 2;
  }
  auto group = train::ProcessGroup::join({"micro_allreduce", 60.0, true});
  if (!group.ok()) {
    std::fprintf(stderr, "micro_allreduce: %s\n", group.error().to_string().c_str());
    return 1;
  }
  Context ctx = Context::cpu();
  const int rank = group->rank(), world = group->world_size();
  std::vector<float> buf(static_cast<std::size_t>(n)), ref(buf.size());
  auto fill = [&] {
    for (long i = 0; i < n; ++i) buf[static_cast<std::size_t>(i)] = float((i * 7 + rank * 13) % 101) * 0.01f;
  };
  TensorRef flat(buf.data(), DType::f32, Device::cpu(), {n});
  using clock = std::chrono::steady_clock;
  auto time_us = [&](auto&& call) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clock::now();
    for (int i = 0; i < iterations; ++i) call();
    MPI_Barrier(MPI_COMM_WORLD);
    return std::chrono::duration<double, std::micro>(clock::now() - t0).count() / iterations;
  };
  // Correctness first: one call of each from the same inputs, compared with the mean computed here.
  fill();
  if (!group->all_reduce_mean(ctx, flat, "check").ok()) return 1;
  ref = buf;
  fill();
  MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  double worst = 0;
  for (long i = 0; i < n; ++i) {
    double mean = 0;
    for (int r = 0; r < world; ++r) mean += float((i * 7 + r * 13) % 101) * 0.01f;
    mean /= world;
    worst = std::max({worst, std::abs(double(ref[static_cast<std::size_t>(i)]) - mean),
                      std::abs(double(buf[static_cast<std::size_t>(i)] / float(world)) - mean)});
  }
  const double ours = time_us([&] { (void)group->all_reduce_mean(ctx, flat, "timed"); });
  const double theirs = time_us([&] {
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (auto& x : buf) x /= float(world);
  });
  if (rank == 0) {
    const double bus = 2.0 * (world - 1) / world * double(n) * 4;
    std::printf("micro_allreduce: %d ranks, %ld floats (%.1f KB), %d calls each\n", world, n, n * 4 / 1e3, iterations);
    std::printf("  ProcessGroup::all_reduce_mean   %8.1f us  %6.2f GB/s bus\n", ours, bus / ours / 1e3);
    std::printf("  MPI_Allreduce + scale           %8.1f us  %6.2f GB/s bus\n", theirs, bus / theirs / 1e3);
    std::printf("  max |error| against the mean    %.3g\n", worst);
  }
  return worst < 1e-5 ? 0 : 1;
}
