// The launch runtime pieces that need no MPI job: --comm parsing, launcher detection from the
// environment (mpirun, PMI, srun), threads per rank, SKIM_FAULT_INJECT parsing and fault_point,
// the log tag, and run_guarded's exit statuses in a single process.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "launch/fault_injection.h"
#include "launch/logger.h"
#include "launch/runtime.h"
#include "src/core/error.h"

namespace skim::launch {
namespace {

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(CommChoice, ParsesTheFourNames) {
  EXPECT_EQ(parse_comm_choice("auto"), CommChoice::kAuto);
  EXPECT_EQ(parse_comm_choice("mpi"), CommChoice::kMpi);
  EXPECT_EQ(parse_comm_choice("nccl"), CommChoice::kNccl);
  EXPECT_EQ(parse_comm_choice("none"), CommChoice::kNone);
  EXPECT_THROW(parse_comm_choice("gloo"), Error);
}

TEST(DetectLauncher, DirectStartIsOneRank) {
  const LauncherInfo info = detect_launcher(fake_env({}));
  EXPECT_EQ(info.launcher, "");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.world, 1);
}

TEST(DetectLauncher, OpenMpiVariables) {
  const LauncherInfo info = detect_launcher(fake_env({{"OMPI_COMM_WORLD_RANK", "5"},
                                                      {"OMPI_COMM_WORLD_SIZE", "8"},
                                                      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                      {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_world, 4);
}

TEST(DetectLauncher, SlurmStepButNotBatchScript) {
  std::map<std::string, std::string> vars = {
      {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"}};
  EXPECT_EQ(detect_launcher(fake_env(vars)).launcher, "");  // sbatch script, no srun step
  vars["SLURM_STEP_ID"] = "0";
  const LauncherInfo info = detect_launcher(fake_env(vars));
  EXPECT_EQ(info.launcher, "slurm");
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world, 4);
  EXPECT_EQ(info.local_rank, 1);
}

TEST(DetectLauncher, PmiAndBadValues) {
  EXPECT_EQ(detect_launcher(fake_env({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}})).launcher, "pmi");
  EXPECT_THROW(detect_launcher(fake_env({{"PMI_RANK", "x"}, {"PMI_SIZE", "2"}})), Error);
  EXPECT_THROW(detect_launcher(fake_env({{"PMI_RANK", "2"}, {"PMI_SIZE", "2"}})), Error);
}

TEST(ThreadsPerRank, SharesTheNodeOrKeepsTheBinding) {
  EXPECT_EQ(threads_per_rank(64, 64, 4), 16);  // unbound: node cores split among local ranks
  EXPECT_EQ(threads_per_rank(8, 64, 4), 8);    // bound to 8 cores by the launcher
  EXPECT_EQ(threads_per_rank(2, 2, 4), 1);     // oversubscribed: at least one
  EXPECT_EQ(threads_per_rank(0, 16, 1), 16);   // affinity unknown
}

TEST(FaultSpec, Parses) {
  const FaultSpec a = parse_fault_spec("rank=3,at=hessian");
  EXPECT_EQ(a.rank, 3);
  EXPECT_EQ(a.stage, "hessian");
  const FaultSpec b = parse_fault_spec("at=startup,rank=*");
  EXPECT_EQ(b.rank, -1);
  EXPECT_EQ(b.stage, "startup");
  EXPECT_EQ(b.delay_s, 0.0);
  const FaultSpec c = parse_fault_spec("rank=*,at=linear_task,delay=2.5,hit=3");
  EXPECT_EQ(c.delay_s, 2.5);
  EXPECT_EQ(c.hit, 3);
  for (const char* bad : {"rank=1", "at=hessian", "rank=one,at=hessian", "rank=1,at=nowhere",
                          "rank=1,at=hessian,when=now", "rank1,at=hessian",
                          "rank=1,at=hessian,delay=0", "rank=1,at=hessian,delay=x"}) {
    EXPECT_THROW(parse_fault_spec(bad), Error) << bad;
  }
}

TEST(FaultPoint, ThrowsOnlyAtTheNamedStageAndRank) {
  // The only test that reads the environment (it is parsed once per process).
  setenv("SKIM_FAULT_INJECT", "rank=0,at=hessian", 1);
  EXPECT_NO_THROW(fault_point("allocation"));
  try {
    fault_point("hessian");
    ADD_FAILURE() << "no fault at the named stage";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hessian"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(rank_tag()), std::string::npos);
  }
  set_identity({"", 1, 2});  // another rank passes the same point
  EXPECT_NO_THROW(fault_point("hessian"));
  set_identity({"", 0, 1});
  EXPECT_THROW(fault_point("not_a_stage"), Error);
}

TEST(Logger, TagIsHostAndRank) {
  set_identity({"node7", 3, 4});
  EXPECT_EQ(rank_tag(), "node7:3");
  set_identity({"", 0, 1});
  EXPECT_FALSE(identity().host.empty());
}

TEST(RunGuarded, ExitStatusesInOneProcess) {
  unsetenv("SKIM_FAULT_INJECT");
  bool ran = false;
  EXPECT_EQ(run_guarded(CommChoice::kNone,
                        [&](Runtime& rt) {
                          ran = true;
                          EXPECT_EQ(rt.world(), 1);
                          EXPECT_EQ(&runtime(), &rt);
                          EXPECT_EQ(rt.comm().size(), 1);
                        }),
            0);
  EXPECT_TRUE(ran);
  EXPECT_THROW(runtime(), Error);  // only inside run_guarded
  EXPECT_EQ(run_guarded(CommChoice::kNone,
                        [](Runtime&) { fail(ErrorKind::kBadInput, "truncated file x"); }),
            2);
  EXPECT_EQ(run_guarded(CommChoice::kNone,
                        [](Runtime&) { fail(ErrorKind::kNumeric, "not positive definite"); }),
            3);
  EXPECT_EQ(run_guarded(CommChoice::kNone, [](Runtime&) { throw std::runtime_error("boom"); }), 3);
  EXPECT_EQ(run_guarded(CommChoice::kNone,
                        [](Runtime&) { fail(ErrorKind::kStopped, "stopped at a safe point"); }),
            75);
}

}  // namespace
}  // namespace skim::launch
