#pragma once
// Data-parallel training across processes: a process group over MPI, the way llm.c runs on several
// GPUs — MPI launches and bootstraps the processes (mpirun, srun) and carries the collectives; ferrite
// adds no launcher or transport of its own.
//
//   auto group = train::ProcessGroup::join({"bench/mnist", 30.0});   // world 1 without a launcher
//   group->broadcast(ctx, store.values(), 0);                         // identical initial weights
//   per step: backward → group->all_reduce_mean(ctx, store.grads(), "gradients") → optimizer.step
//
// Gradient all-reduce, deterministic by construction: the flat buffer is cut into `world` shards,
// MPI_Alltoall hands rank r every rank's copy of shard r, rank r adds them in rank order 0, 1, …,
// world-1 and divides by world, and MPI_Allgather returns the averaged shards to everyone. The same
// bytes move as in a ring all-reduce (2·(world-1)/world of the buffer per rank), but the sum's order
// is fixed, so a world-size-N run is bit-identical run to run whatever algorithm MPI picks (MPI_Allreduce
// does not promise that for floats), and every rank ends with the same bits. With two ranks there is
// no order to fix (x0 + x1 == x1 + x0), and MPI_Allreduce, faster there, gives the same bits.
//
// Safety: check_same_config compares every rank's configuration with rank 0's before training (the
// mismatching ranks name the differing fields); every collective runs under a watchdog, so a peer that
// hangs makes the others exit (code kExitPeerLost, a message naming the collective) after `timeout_s`
// instead of waiting forever. A peer that dies is reported by the launcher (mpirun: "process rank N …
// exited on signal 9"), which then ends the other ranks.
//
// Device buffers (a CUDA context) go through NCCL on the context's stream (ncclAvg: no host copy, no
// sync; NCCL's own order, fixed for a given world size and topology), its unique id broadcast over MPI
// as llm.c does; where NCCL cannot be loaded they are staged through host memory and the reason is
// reported (backend "mpi (host-staged: …)").
//
// Builds without MPI (meson -Dmpi=disabled, or no libopenmpi-dev) have the same API: world size 1
// works as before, and a process started by a launcher with more than one rank is refused by name.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(FERRITE_WITH_MPI)
#include <mpi.h>
#endif

#include "ferrite/backend/cuda/collectives.hpp"
#include "ferrite/core/clock.hpp"
#include "ferrite/core/format.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/tensor/context.hpp"

namespace ferrite::train {

// Exit status of a rank whose peer stopped answering (the watchdog).
inline constexpr int kExitPeerLost = 75;

// Who started this process, from the launcher's environment variables.
struct LaunchInfo {
  int rank = 0, world = 1, local_rank = 0;
  std::string launcher = "none";  // none | mpirun | slurm | pmi | torchrun
};

namespace distributed_detail {
inline const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
// A non-negative integer environment variable, or -1 (absent) / -2 (not an integer).
inline long env_int(const char* name) {
  const char* v = env(name);
  if (!v) return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (end && *end == '\0' && x >= 0) ? x : -2;
}
}  // namespace distributed_detail

// Open MPI's mpirun (OMPI_COMM_WORLD_*), Slurm's srun (SLURM_PROCID within a job step), PMI launchers
// (PMI_RANK / PMI_SIZE: MPICH's hydra), and torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK).
inline Result<LaunchInfo> detect_launch() {
  using distributed_detail::env_int;
  struct Source {
    const char *launcher, *rank, *world, *local;
  };
  static constexpr Source sources[] = {
      {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
      {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
  };
  for (const Source& s : sources) {
    const long rank = env_int(s.rank), world = env_int(s.world);
    if (rank == -1 && world == -1) continue;
    if (std::string_view(s.launcher) == "slurm" && !distributed_detail::env("SLURM_STEP_ID")) continue;  // sbatch shell, not srun
    if (rank < 0 || world < 1 || rank >= world)
      return make_error(ErrorCode::invalid_argument, "ProcessGroup",
                        fe_format("{}={} and {}={} from the {} launcher are not a rank below a world size", s.rank,
                                  distributed_detail::env(s.rank) ? distributed_detail::env(s.rank) : "(unset)", s.world,
                                  distributed_detail::env(s.world) ? distributed_detail::env(s.world) : "(unset)", s.launcher));
    const long local = env_int(s.local);
    return LaunchInfo{static_cast<int>(rank), static_cast<int>(world), local >= 0 ? static_cast<int>(local) : 0, s.launcher};
  }
  return LaunchInfo{};
}

struct GroupOptions {
  std::string program = "ferrite";  // names the process in watchdog messages
  double timeout_s = 30;            // a collective that takes longer means a lost peer (≤ 0: no watchdog)
  bool even_alone = false;          // join MPI (and NCCL) with a world of one too: exercises the collectives
};

// Time spent inside collectives, for the report's communication share.
struct CommStats {
  double seconds = 0;
  std::int64_t bytes = 0;  // sent by this rank
};

class ProcessGroup {
 public:
  // Joins the group of the launcher that started this process (detect_launch): MPI for mpirun, srun and
  // PMI launchers; world 1 when there is none. Refused: a multi-rank launch in a build without MPI, and
  // torchrun-style variables without an MPI launcher (the processes need MPI to find each other).
  static Result<ProcessGroup> join(const GroupOptions& options = {}) {
    FE_TRY_ASSIGN(const LaunchInfo launch, detect_launch());
    ProcessGroup g;
    g.launch_ = launch;
    if (launch.world == 1 && !options.even_alone) return g;  // nothing to talk to
    if (launch.launcher == "torchrun")
      return make_error(ErrorCode::unsupported, "ProcessGroup",
                        fe_format("WORLD_SIZE={} from a torchrun-style launch, but ferrite's processes find each other "
                                  "through MPI: start them with `mpirun -np {} …` (or srun) instead",
                                  launch.world, launch.world));
#if defined(FERRITE_WITH_MPI)
    FE_TRY_ASSIGN(g.impl_, Impl::start(launch, options));
    return g;
#else
    (void)options;
    return make_error(ErrorCode::unsupported, "ProcessGroup",
                      fe_format("started as rank {} of {} by {}, but this build has no MPI (install libopenmpi-dev "
                                "and reconfigure with -Dmpi=enabled)",
                                launch.rank, launch.world, launch.launcher));
#endif
  }

  int rank() const noexcept { return launch_.rank; }
  int world_size() const noexcept { return launch_.world; }
  int local_rank() const noexcept { return launch_.local_rank; }
  bool is_root() const noexcept { return launch_.rank == 0; }
  const std::string& launcher() const noexcept { return launch_.launcher; }
  // Whether collectives run (a group of more than one, or one joined even_alone).
  bool active() const noexcept { return impl_ != nullptr; }
  // "none" (no group), "mpi" (host buffers), "nccl" (device buffers through NCCL), "mpi (host-staged: why)"
  // (device buffers through host memory).
  std::string backend() const { return impl_ ? impl_->backend_name() : "none"; }
  CommStats stats() const noexcept { return impl_ ? impl_->stats : CommStats{}; }

  // flat := the mean over ranks of every rank's flat (f32, contiguous; the same size on every rank).
  // On the CPU deterministic (see the top of this file); a GPU buffer goes through NCCL on ctx's stream
  // (asynchronous: the stats count the enqueue), or through host memory where NCCL cannot be loaded.
  Status all_reduce_mean(Context& ctx, TensorRef flat, const char* what) {
    if (!impl_) return ok_status();
    FE_TRY(check_flat("ProcessGroup::all_reduce_mean", flat));
    if (flat.device.is_cuda()) {
      FE_TRY_ASSIGN(const bool nccl, impl_->ensure_nccl(ctx));
      if (nccl) return impl_->nccl_all_reduce_mean(ctx, flat, what);
    }
    return on_host(ctx, flat, [&](float* host) { return impl_->all_reduce_mean(host, flat.numel(), shard_size(flat.numel()), what); });
  }

  // ZeRO-1. A flat buffer of n elements is cut into world shards of ceil(n / world) elements rounded up to
  // 64 (aligned slices for the update kernels); rank r owns [r·s, min(n, (r+1)·s)).
  struct Shard {
    std::int64_t begin = 0, end = 0;
  };
  Shard shard_of(std::int64_t n) const noexcept {
    if (!impl_) return {0, n};
    const std::int64_t s = shard_size(n);
    const std::int64_t begin = std::min(n, s * rank());
    return {begin, std::min(n, begin + s)};
  }
  // flat[this rank's shard] := the mean over ranks of that shard (the rest of flat is left as it was):
  // the all-to-all and rank-ordered sum of all_reduce_mean without its all-gather, so the shard holds
  // exactly the bits all_reduce_mean would give it. Device buffers go through host memory.
  Status reduce_scatter_mean(Context& ctx, TensorRef flat, const char* what) {
    if (!impl_) return ok_status();
    FE_TRY(check_flat("ProcessGroup::reduce_scatter_mean", flat));
    return on_host(ctx, flat, [&](float* host) { return impl_->reduce_scatter_mean(host, flat.numel(), shard_size(flat.numel()), what); });
  }
  // Every rank's shard of flat to every rank (after each updated its own).
  Status all_gather_shards(Context& ctx, TensorRef flat, const char* what) {
    if (!impl_) return ok_status();
    FE_TRY(check_flat("ProcessGroup::all_gather_shards", flat));
    return on_host(ctx, flat, [&](float* host) { return impl_->all_gather_shards(host, flat.numel(), shard_size(flat.numel()), what); });
  }

  // The mean over ranks of one number per rank, summed in rank order (every rank gets the same value).
  Result<double> mean(double local, const char* what) {
    std::vector<double> one{local};
    FE_TRY(mean_each(one, what));
    return one[0];
  }

  // values[i] := the mean over ranks of every rank's values[i], summed in rank order (the same length on
  // every rank): one collective for a whole vector.
  Status mean_each(std::vector<double>& values, const char* what) {
    if (!impl_) return ok_status();
    FE_TRY_ASSIGN(const std::vector<double> all, impl_->all_gather(values, what));
    const std::size_t k = values.size(), world = static_cast<std::size_t>(world_size());
    for (std::size_t i = 0; i < k; ++i) {
      double sum = 0;
      for (std::size_t r = 0; r < world; ++r) sum += all[r * k + i];
      values[i] = sum / double(world);
    }
    return ok_status();
  }

  // Every rank's value, in rank order.
  Result<std::vector<double>> all_gather(double local, const char* what) {
    if (!impl_) return std::vector<double>{local};
    return impl_->all_gather(local, what);
  }

  // flat := root's flat on every rank.
  Status broadcast(Context& ctx, TensorRef flat, int root, const char* what) {
    if (!impl_) return ok_status();
    if (!flat.is_contiguous())
      return make_error(ErrorCode::unsupported, "ProcessGroup::broadcast", "needs a contiguous buffer", flat.describe());
    const std::int64_t bytes = flat.numel() * static_cast<std::int64_t>(dtype_size(flat.dtype));
    if (flat.device.is_cuda()) {
      FE_TRY_ASSIGN(const bool nccl, impl_->ensure_nccl(ctx));
      if (nccl) return impl_->nccl_broadcast(ctx, flat, bytes, root, what);
    }
    return on_host(ctx, flat, [&](float* host) { return impl_->broadcast(host, bytes, root, what); });
  }

  // Compares this rank's configuration (name → value) with rank 0's. On a mismatch every rank fails:
  // a mismatching rank names the fields that differ, the others name the mismatching ranks.
  Status check_same_config(const std::vector<std::pair<std::string, std::string>>& fields) {
    if (!impl_) return ok_status();
    std::string mine;
    for (const auto& [k, v] : fields) mine += k + '\x1f' + v + '\x1e';
    std::string root = mine;
    FE_TRY(impl_->broadcast_string(root, "the configuration check"));
    std::map<std::string, std::string> theirs;
    for (std::size_t pos = 0; pos < root.size();) {
      const std::size_t sep = root.find('\x1f', pos), end = root.find('\x1e', pos);
      if (sep == std::string::npos || end == std::string::npos || sep > end) break;
      theirs[root.substr(pos, sep - pos)] = root.substr(sep + 1, end - sep - 1);
      pos = end + 1;
    }
    std::string diff;
    for (const auto& [k, v] : fields) {
      const auto it = theirs.find(k);
      const std::string other = it == theirs.end() ? "(absent)" : it->second;
      if (other != v) diff += fe_format("{}{} = {} here, {} on rank 0", diff.empty() ? "" : "; ", k, v, other);
    }
    FE_TRY_ASSIGN(const std::vector<double> flags, impl_->all_gather(diff.empty() ? 0.0 : 1.0, "the configuration check"));
    std::string bad;
    for (std::size_t r = 0; r < flags.size(); ++r)
      if (flags[r] != 0) bad += (bad.empty() ? "" : ", ") + std::to_string(r);
    if (bad.empty()) return ok_status();
    if (!diff.empty())
      return make_error(ErrorCode::invalid_argument, "ProcessGroup",
                        fe_format("rank {} was started with another configuration than rank 0: {}", rank(), diff));
    return make_error(ErrorCode::invalid_argument, "ProcessGroup",
                      fe_format("rank(s) {} were started with another configuration than rank 0 (their messages "
                                "name the fields); every rank must get the same flags",
                                bad));
  }

 private:
  ProcessGroup() = default;

  std::int64_t shard_size(std::int64_t n) const noexcept {
    const std::int64_t w = world_size();
    return ((n + w - 1) / w + 63) / 64 * 64;
  }
  // op(pointer to flat's bytes on the host): its own on the CPU, a host copy of a device buffer (copied
  // back afterwards) on a GPU.
  template <class Op>
  Status on_host(Context& ctx, TensorRef flat, Op&& op) {
    FE_TRY_ASSIGN(float* host, impl_->host_view(ctx, flat));
    FE_TRY(op(host));
    return impl_->host_done(ctx, flat);
  }
  static Status check_flat(const char* op, const TensorRef& flat) {
    if (flat.dtype != DType::f32 || !flat.is_contiguous())
      return make_error(ErrorCode::unsupported, op, "needs a contiguous f32 buffer", flat.describe());
    return ok_status();
  }

#if defined(FERRITE_WITH_MPI)
  // The MPI runtime of this process (initialized here, finalized when the group goes) and its watchdog.
  struct Impl {
    LaunchInfo launch;
    GroupOptions options;
    MPI_Comm comm = MPI_COMM_NULL;
    CommStats stats;
    bool staged = false;
    std::vector<float> send, recv, shard;  // all-reduce scratch (kept between steps)
    // NCCL for device buffers: made at the first device collective (every rank reaches it at the same
    // point); a shared_ptr so that builds without the CUDA backend never instantiate its destructor.
    std::shared_ptr<cuda::NcclComm> nccl;
    bool nccl_tried = false;
    std::string nccl_failure;  // why device buffers are staged through host memory instead

    std::string backend_name() const {
      if (nccl) return "nccl";
      if (staged) return nccl_failure.empty() ? "mpi (host-staged)" : "mpi (host-staged: " + nccl_failure + ")";
      return "mpi";
    }

    // Whether device collectives go through NCCL. Rank 0 makes the id (or fails to load NCCL) and
    // broadcasts it with a flag, so every rank takes the same road.
    Result<bool> ensure_nccl(Context& ctx) {
      if (nccl_tried) return nccl != nullptr;
      nccl_tried = true;
      const int device = ctx.device().index;
      struct {
        cuda::NcclUniqueId id;
        std::int32_t ok = 0;
      } message;
      if (launch.rank == 0) {
        auto id = FE_DETAIL_CUDA_RESULT(cuda::NcclUniqueId, "ProcessGroup", device, cuda::NcclComm::unique_id());
        if (id.ok()) {
          message.id = *id;
          message.ok = 1;
        } else {
          nccl_failure = id.error().message;
        }
      }
      FE_TRY(broadcast(&message, sizeof(message), 0, "the NCCL id broadcast"));
      if (!message.ok) {
        if (nccl_failure.empty()) nccl_failure = "rank 0 could not start NCCL";
        return false;
      }
      Status made = ok_status();
      FE_TRY(collective("NCCL communicator creation", 0, [&] {
        made = FE_DETAIL_CUDA("ProcessGroup", device, [&]() -> Status {
          FE_TRY_ASSIGN(std::unique_ptr<cuda::NcclComm> comm, cuda::NcclComm::create(device, launch.world, launch.rank, message.id));
          nccl = std::move(comm);
          return ok_status();
        }());
        return MPI_SUCCESS;
      }));
      FE_TRY(made);  // a rank that cannot join fails; the others' NCCL init then fails or times out
      return true;
    }

    Status nccl_all_reduce_mean(Context& ctx, TensorRef flat, const char* what) {
      Status s = ok_status();
      FE_TRY(collective(what, flat.numel() * 4 * 2 * (launch.world - 1) / launch.world, [&] {
        s = FE_DETAIL_CUDA("ProcessGroup", ctx.device().index,
                           nccl->all_reduce_mean(*ctx.stream(), flat.ptr<float>(), flat.numel()));
        return MPI_SUCCESS;
      }));
      return s;
    }
    Status nccl_broadcast(Context& ctx, TensorRef flat, std::int64_t bytes, int root, const char* what) {
      Status s = ok_status();
      FE_TRY(collective(what, launch.rank == root ? bytes : 0, [&] {
        s = FE_DETAIL_CUDA("ProcessGroup", ctx.device().index, nccl->broadcast(*ctx.stream(), flat.data, bytes, root));
        return MPI_SUCCESS;
      }));
      return s;
    }
    std::vector<unsigned char> host;       // staging copy of a device buffer

    // Watchdog: the collective in flight (null: none) and when it started.
    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    std::atomic<const char*> in_flight{nullptr};
    std::atomic<double> started_s{0};  // now_seconds() when it started
    std::thread watchdog;

    static Result<std::unique_ptr<Impl>> start(const LaunchInfo& launch, const GroupOptions& options) {
      int initialized = 0;
      MPI_Initialized(&initialized);
      if (initialized)
        return make_error(ErrorCode::invalid_argument, "ProcessGroup", "MPI is already initialized in this process");
      int provided = 0;
      // FUNNELED: only this thread calls MPI (TBB workers and the watchdog never do).
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return make_error(ErrorCode::io, "ProcessGroup", "MPI_Init_thread failed");
      auto impl = std::make_unique<Impl>();
      impl->launch = launch;
      impl->options = options;
      MPI_Comm_dup(MPI_COMM_WORLD, &impl->comm);
      MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN);
      int rank = 0, world = 0;
      MPI_Comm_rank(impl->comm, &rank);
      MPI_Comm_size(impl->comm, &world);
      if (rank != launch.rank || world != launch.world)
        return make_error(ErrorCode::internal, "ProcessGroup",
                          fe_format("MPI says rank {} of {}, the launcher's environment rank {} of {}", rank, world,
                                    launch.rank, launch.world));
      if (options.timeout_s > 0) impl->watchdog = std::thread([p = impl.get()] { p->watch(); });
      return impl;
    }

    ~Impl() {
      {
        std::lock_guard<std::mutex> lock(mutex);
        stopping = true;
      }
      wake.notify_all();
      if (watchdog.joinable()) watchdog.join();
      if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }

    void watch() {
      std::unique_lock<std::mutex> lock(mutex);
      while (!wake.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping; })) {
        const char* what = in_flight.load(std::memory_order_acquire);
        if (!what) continue;
        const double waited = now_seconds() - started_s.load(std::memory_order_acquire);
        if (waited < options.timeout_s) continue;
        std::fprintf(stderr,
                     "%s: error: rank %d of %d: %s did not complete within %.0f s: another rank is hung or gone "
                     "(the launcher's output names a rank that died); exiting\n",
                     options.program.c_str(), launch.rank, launch.world, what, options.timeout_s);
        std::fflush(stderr);
        std::_Exit(kExitPeerLost);  // no MPI call can be trusted to return now
      }
    }

    // One collective: watched, timed, and its MPI error turned into a Status naming it.
    template <class Call>
    Status collective(const char* what, std::int64_t bytes, Call&& call) {
      started_s.store(now_seconds(), std::memory_order_release);
      in_flight.store(what, std::memory_order_release);
      Stopwatch clock;
      const int rc = call();
      in_flight.store(nullptr, std::memory_order_release);
      stats.seconds += clock.elapsed_seconds();
      stats.bytes += bytes;
      if (rc == MPI_SUCCESS) return ok_status();
      char text[MPI_MAX_ERROR_STRING] = {};
      int len = 0;
      MPI_Error_string(rc, text, &len);
      return make_error(ErrorCode::io, "ProcessGroup",
                        fe_format("rank {} of {}: MPI failed during {}: {}", launch.rank, launch.world, what,
                                  std::string(text, static_cast<std::size_t>(len))));
    }

    // data := the mean over ranks. More than two ranks: the reduce-scatter and the all-gather below, with
    // shards of s elements (the order of each element's sum does not depend on where shards begin).
    Status all_reduce_mean(float* data, std::int64_t n, std::int64_t s, const char* what) {
      if (launch.world == 2 && n <= std::int64_t{1} << 30) {
        // Two ranks: every element's sum is x0 + x1 whatever the algorithm (and x0 + x1 == x1 + x0 in
        // IEEE arithmetic), so MPI's own all-reduce gives the same bits as the ordered sum below, and
        // is faster (bench/micro/allreduce.cpp).
        FE_TRY(collective(what, n * std::int64_t(sizeof(float)), [&] {
          return MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm);
        }));
        for (std::int64_t i = 0; i < n; ++i) data[i] /= 2.0f;
        return ok_status();
      }
      FE_TRY(reduce_scatter_mean(data, n, s, what));
      return all_gather_shards(data, n, s, what);
    }

    // shard := the mean over ranks of this rank's s-element shard of data[0, n) (zero past n): MPI_Alltoall
    // hands every rank its shard of every rank's buffer, added here in rank order.
    Status sum_shards(const float* data, std::int64_t n, std::int64_t s, const char* what) {
      const int world = launch.world;
      if (s > std::int64_t{1} << 30)
        return make_error(ErrorCode::unsupported, "ProcessGroup", fe_format("{} elements per shard", s));
      const float* src = data;
      if (s * world != n) {  // pad to whole shards
        send.assign(static_cast<std::size_t>(s * world), 0.f);
        std::copy(data, data + n, send.begin());
        src = send.data();
      }
      recv.resize(static_cast<std::size_t>(s * world));
      shard.resize(static_cast<std::size_t>(s));
      const int count = static_cast<int>(s);
      const std::int64_t bytes = s * (world - 1) * std::int64_t(sizeof(float));
      FE_TRY(collective(what, bytes, [&] {
        return MPI_Alltoall(src, count, MPI_FLOAT, recv.data(), count, MPI_FLOAT, comm);
      }));
      // ((x0 + x1) + x2) + … in rank order, one contiguous pass per rank (vectorized), then the division.
      const float divisor = static_cast<float>(world);
      float* out = shard.data();
      std::copy(recv.begin(), recv.begin() + s, out);
      for (int r = 1; r < world; ++r) {
        const float* in = recv.data() + std::int64_t(r) * s;
        for (std::int64_t i = 0; i < s; ++i) out[i] += in[i];
      }
      for (std::int64_t i = 0; i < s; ++i) out[i] /= divisor;
      return ok_status();
    }

    Status reduce_scatter_mean(float* data, std::int64_t n, std::int64_t s, const char* what) {
      FE_TRY(sum_shards(data, n, s, what));
      const std::int64_t begin = std::min(n, s * launch.rank), end = std::min(n, begin + s);
      std::copy(shard.begin(), shard.begin() + (end - begin), data + begin);
      return ok_status();
    }

    Status all_gather_shards(float* data, std::int64_t n, std::int64_t s, const char* what) {
      const int world = launch.world;
      if (s > std::int64_t{1} << 30)
        return make_error(ErrorCode::unsupported, "ProcessGroup", fe_format("{} elements per shard", s));
      const int count = static_cast<int>(s);
      const std::int64_t bytes = s * (world - 1) * std::int64_t(sizeof(float));
      if (s * world == n)  // whole shards: in place, each rank's contribution read from its own slice
        return collective(what, bytes, [&] {
          return MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, count, MPI_FLOAT, comm);
        });
      const std::int64_t begin = std::min(n, s * launch.rank), end = std::min(n, begin + s);
      shard.assign(static_cast<std::size_t>(s), 0.f);
      std::copy(data + begin, data + end, shard.begin());
      recv.resize(static_cast<std::size_t>(s * world));
      FE_TRY(collective(what, bytes, [&] {
        return MPI_Allgather(shard.data(), count, MPI_FLOAT, recv.data(), count, MPI_FLOAT, comm);
      }));
      std::copy(recv.begin(), recv.begin() + n, data);
      return ok_status();
    }

    Result<std::vector<double>> all_gather(double local, const char* what) { return all_gather(std::vector<double>{local}, what); }
    // Every rank's `local` (the same length everywhere), rank after rank.
    Result<std::vector<double>> all_gather(const std::vector<double>& local, const char* what) {
      if (local.size() > std::size_t{1} << 28)
        return make_error(ErrorCode::unsupported, "ProcessGroup::all_gather", fe_format("{} values", local.size()));
      const int k = static_cast<int>(local.size());
      std::vector<double> all(local.size() * static_cast<std::size_t>(launch.world));
      FE_TRY(collective(what, 8 * std::int64_t(k) * (launch.world - 1), [&] {
        return MPI_Allgather(local.data(), k, MPI_DOUBLE, all.data(), k, MPI_DOUBLE, comm);
      }));
      return all;
    }

    Status broadcast(void* data, std::int64_t bytes, int root, const char* what) {
      if (bytes > std::int64_t{1} << 31)
        return make_error(ErrorCode::unsupported, "ProcessGroup::broadcast", fe_format("{} bytes in one call", bytes));
      return collective(what, launch.rank == root ? bytes : 0, [&] {
        return MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm);
      });
    }

    Status broadcast_string(std::string& text, const char* what) {
      long long size = static_cast<long long>(text.size());
      FE_TRY(collective(what, 8, [&] { return MPI_Bcast(&size, 1, MPI_LONG_LONG, 0, comm); }));
      text.resize(static_cast<std::size_t>(size));
      return broadcast(text.data(), size, 0, what);
    }

    // A host pointer to `flat`'s bytes: its own on the CPU, else a staging copy.
    Result<float*> host_view(Context& ctx, TensorRef flat) {
      if (flat.device.is_cpu()) return flat.ptr<float>();
      staged = true;
      host.resize(static_cast<std::size_t>(flat.numel()) * dtype_size(flat.dtype));
      TensorRef h(host.data(), flat.dtype, Device::cpu(), {flat.numel()});
      FE_TRY(ops::copy(ctx, flat, h));
      FE_TRY(ctx.synchronize());
      return reinterpret_cast<float*>(host.data());
    }
    Status host_done(Context& ctx, TensorRef flat) {
      if (flat.device.is_cpu()) return ok_status();
      FE_TRY(ops::copy(ctx, TensorRef(host.data(), flat.dtype, Device::cpu(), {flat.numel()}), flat));
      return ctx.synchronize();
    }
  };
  std::unique_ptr<Impl> impl_;
#else
  struct Impl {
    bool staged = false;
    CommStats stats;
    std::string backend_name() const { return "none"; }
    Result<bool> ensure_nccl(Context&) { return false; }
    Status nccl_all_reduce_mean(Context&, TensorRef, const char*) { return ok_status(); }
    Status nccl_broadcast(Context&, TensorRef, std::int64_t, int, const char*) { return ok_status(); }
    Result<float*> host_view(Context&, TensorRef) { return make_error(ErrorCode::internal, "ProcessGroup", "no MPI"); }
    Status host_done(Context&, TensorRef) { return ok_status(); }
    Status all_reduce_mean(float*, std::int64_t, std::int64_t, const char*) { return ok_status(); }
    Status reduce_scatter_mean(float*, std::int64_t, std::int64_t, const char*) { return ok_status(); }
    Status all_gather_shards(float*, std::int64_t, std::int64_t, const char*) { return ok_status(); }
    Result<std::vector<double>> all_gather(double x, const char*) { return std::vector<double>{x}; }
    Result<std::vector<double>> all_gather(const std::vector<double>& x, const char*) { return x; }
    Status broadcast(void*, std::int64_t, int, const char*) { return ok_status(); }
    Status broadcast_string(std::string&, const char*) { return ok_status(); }
  };
  std::unique_ptr<Impl> impl_;  // always null
#endif
  LaunchInfo launch_;
};

}  // namespace ferrite::train
