#pragma once
// The process's place in the job: rank, world, local rank, host, GPU, threads, and the
// communicator chosen by --comm. Built once by run_guarded, which is also the one place where an
// error on any rank becomes a message, an abort of the other ranks and an exit status.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "comm/communicator.h"

namespace skim::launch {

enum class CommChoice { kAuto, kMpi, kNccl, kNone };

// "auto" | "mpi" | "nccl" | "none"; throws kUsage otherwise.
CommChoice parse_comm_choice(std::string_view text);

// What the launcher says through the environment, before MPI starts: Open MPI's mpirun
// (OMPI_COMM_WORLD_*), a PMI launcher (PMI_RANK, PMI_SIZE) or Slurm's srun (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID inside a job step). launcher is empty when started directly.
struct LauncherInfo {
  std::string launcher;
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  int local_world = 1;
};
using EnvLookup = std::function<const char*(const char*)>;
LauncherInfo detect_launcher(const EnvLookup& env);
LauncherInfo detect_launcher();  // from the process environment

// OpenMP/BLAS threads for one rank: the cores this process may run on when the launcher bound
// it to a subset, else the node's cores shared among the ranks on the node.
int threads_per_rank(int cores_allowed, int cores_total, int local_world);

class Runtime {
 public:
  // Starts MPI when the chosen backend needs it or a launcher started the process; picks the
  // GPU (local rank modulo the visible GPUs), the threads and the communicator:
  //   auto: NCCL when every rank has a GPU and the build has NCCL, else MPI when MPI is running,
  //   else none. Throws kUsage when the choice cannot be served (e.g. none with 4 ranks).
  explicit Runtime(CommChoice choice);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int local_rank() const { return local_rank_; }
  int local_world() const { return local_world_; }
  const std::string& host() const { return host_; }
  int device() const { return device_; }  // CUDA device index, -1 when no GPU is visible
  bool every_rank_has_gpu() const { return every_rank_has_gpu_; }
  int threads() const { return threads_; }
  comm::Communicator& comm() { return *comm_; }

 private:
  struct MpiSession;  // finalises MPI even when the constructor throws half way
  std::unique_ptr<MpiSession> mpi_;
  int rank_ = 0;
  int world_ = 1;
  int local_rank_ = 0;
  int local_world_ = 1;
  std::string host_;
  int device_ = -1;
  bool every_rank_has_gpu_ = false;
  int threads_ = 1;
  std::unique_ptr<comm::Communicator> comm_;
};

// The runtime of this process while run_guarded runs its body; throws kInternal outside.
Runtime& runtime();

// Builds the Runtime, passes fault_point("startup"), runs `body`. On an error from any of it:
// prints "host:rank: error: <message>", and when there are other ranks aborts them all through
// the communicator (they exit non-zero within seconds instead of waiting in a collective).
// Returns the exit status: 0, or skim::exit_status of the error (3 for other exceptions). A
// kStopped error is a collective, orderly stop: logged on rank 0, no abort, exit 75.
int run_guarded(CommChoice choice, const std::function<void(Runtime&)>& body);

}  // namespace skim::launch
