#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "ferrite/train/distributed.hpp"

using namespace ferrite;
using namespace ferrite::train;

namespace {

// Sets launcher variables for one test and removes them (and every other launcher's) afterwards.
class LaunchEnv {
 public:
  explicit LaunchEnv(std::vector<std::pair<const char*, const char*>> vars) {
    clear();
    for (const auto& [k, v] : vars) setenv(k, v, 1);
  }
  ~LaunchEnv() { clear(); }
  static void clear() {
    for (const char* k : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_PROCID",
                          "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_STEP_ID", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID",
                          "RANK", "WORLD_SIZE", "LOCAL_RANK"})
      unsetenv(k);
  }
};

}  // namespace

TEST(DetectLaunch, NoLauncherIsAWorldOfOne) {
  LaunchEnv env({});
  auto l = detect_launch();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->world, 1);
  EXPECT_EQ(l->rank, 0);
  EXPECT_EQ(l->launcher, "none");
}

TEST(DetectLaunch, ReadsEachLauncher) {
  {
    LaunchEnv env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
    auto l = detect_launch();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->launcher, "mpirun");
    EXPECT_EQ(l->rank, 1);
    EXPECT_EQ(l->world, 4);
    EXPECT_EQ(l->local_rank, 1);
  }
  {
    LaunchEnv env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_STEP_ID", "0"}});
    auto l = detect_launch();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->launcher, "slurm");
    EXPECT_EQ(l->rank, 3);
    EXPECT_EQ(l->local_rank, 1);
  }
  {  // an sbatch script's shell has SLURM_PROCID but is no task of a step: not a launch
    LaunchEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}});
    auto l = detect_launch();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->launcher, "none");
  }
  {
    LaunchEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}});
    auto l = detect_launch();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->launcher, "torchrun");
    EXPECT_EQ(l->world, 2);
  }
}

TEST(DetectLaunch, RejectsNonsenseByName) {
  for (auto vars : std::vector<std::vector<std::pair<const char*, const char*>>>{
           {{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}},
           {{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}},
           {{"RANK", "0"}, {"WORLD_SIZE", "0"}},
           {{"PMI_RANK", "-1"}, {"PMI_SIZE", "2"}}}) {
    LaunchEnv env(vars);
    auto l = detect_launch();
    ASSERT_FALSE(l.ok()) << vars[0].first << "=" << vars[0].second;
    EXPECT_NE(l.error().to_string().find(vars[0].first), std::string::npos) << l.error().to_string();
  }
}

TEST(ProcessGroup, WorldOfOneNeedsNoMpi) {
  LaunchEnv env({});
  auto g = ProcessGroup::join();
  ASSERT_TRUE(g.ok()) << g.error().to_string();
  EXPECT_EQ(g->world_size(), 1);
  EXPECT_TRUE(g->is_root());
  EXPECT_EQ(g->backend(), "none");
  // Collectives are the identity in a world of one.
  auto ctx = Context::create(Device::cpu());
  ASSERT_TRUE(ctx.ok());
  std::vector<float> x{1.f, -2.f, 3.5f};
  TensorRef ref(x.data(), DType::f32, Device::cpu(), {3});
  ASSERT_TRUE(g->all_reduce_mean(*ctx, ref, "test").ok());
  ASSERT_TRUE(g->broadcast(*ctx, ref, 0, "test").ok());
  EXPECT_EQ(x, (std::vector<float>{1.f, -2.f, 3.5f}));
  auto m = g->mean(0.25, "test");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, 0.25);
  EXPECT_TRUE(g->check_same_config({{"batch", "32"}}).ok());
}

TEST(ProcessGroup, TorchrunVariablesAloneAreRefusedWithTheWayToLaunch) {
  LaunchEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  auto g = ProcessGroup::join();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().to_string().find("mpirun -np 2"), std::string::npos) << g.error().to_string();
}

#if !defined(FERRITE_WITH_MPI)
TEST(ProcessGroup, MultiRankLaunchWithoutMpiIsRefusedByName) {
  LaunchEnv env({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  auto g = ProcessGroup::join();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().to_string().find("no MPI"), std::string::npos) << g.error().to_string();
}
#endif
