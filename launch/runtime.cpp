#include "launch/runtime.h"

#include <omp.h>
#include <sched.h>

#include <charconv>
#include <cstdlib>
#include <exception>
#include <thread>

#include "comm/backends.h"
#include "comm/cuda_devices.h"
#include "comm/mpi_environment.h"
#include "kernels/cpu/blas.h"
#include "launch/fault_injection.h"
#include "launch/logger.h"
#include "src/core/error.h"
#include "src/core/fault_hook.h"

namespace skim::launch {

CommChoice parse_comm_choice(std::string_view text) {
  if (text == "auto") return CommChoice::kAuto;
  if (text == "mpi") return CommChoice::kMpi;
  if (text == "nccl") return CommChoice::kNccl;
  if (text == "none") return CommChoice::kNone;
  fail(ErrorKind::kUsage, "--comm '{}': expected auto, mpi, nccl or none", text);
}

namespace {

// Reads a non-negative integer variable; nullopt-like -1 when unset, kUsage when malformed.
int env_int(const EnvLookup& env, const char* name) {
  const char* text = env(name);
  if (text == nullptr || *text == '\0') return -1;
  const std::string_view view(text);
  int value = -1;
  const auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (ec != std::errc() || end != view.data() + view.size() || value < 0) {
    fail(ErrorKind::kUsage, "environment {}='{}' is not a non-negative integer", name, view);
  }
  return value;
}

bool fill(LauncherInfo& info, const char* launcher, int rank, int world, int local_rank,
          int local_world) {
  if (rank < 0 || world < 1) return false;
  info.launcher = launcher;
  info.rank = rank;
  info.world = world;
  info.local_rank = local_rank >= 0 ? local_rank : 0;
  // An unknown node size is at least what the local rank implies; MPI replaces it later.
  info.local_world = local_world >= 1 ? local_world : info.local_rank + 1;
  if (info.rank >= info.world || info.local_rank >= info.local_world) {
    fail(ErrorKind::kUsage, "{} environment says rank {} of {} (local {} of {})", launcher,
         info.rank, info.world, info.local_rank, info.local_world);
  }
  return true;
}

int cores_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

Runtime* g_current = nullptr;

}  // namespace

LauncherInfo detect_launcher(const EnvLookup& env) {
  LauncherInfo info;
  if (fill(info, "mpirun", env_int(env, "OMPI_COMM_WORLD_RANK"),
           env_int(env, "OMPI_COMM_WORLD_SIZE"), env_int(env, "OMPI_COMM_WORLD_LOCAL_RANK"),
           env_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE"))) {
    return info;
  }
  if (fill(info, "pmi", env_int(env, "PMI_RANK"), env_int(env, "PMI_SIZE"),
           env_int(env, "MPI_LOCALRANKID"), env_int(env, "MPI_LOCALNRANKS"))) {
    return info;
  }
  // SLURM_PROCID is also set in the batch script itself; a job step (srun) has SLURM_STEP_ID.
  if (env("SLURM_STEP_ID") != nullptr &&
      fill(info, "slurm", env_int(env, "SLURM_PROCID"), env_int(env, "SLURM_NTASKS"),
           env_int(env, "SLURM_LOCALID"), env_int(env, "SLURM_NTASKS_PER_NODE"))) {
    return info;
  }
  return LauncherInfo{};
}

LauncherInfo detect_launcher() {
  return detect_launcher([](const char* name) -> const char* { return std::getenv(name); });
}

int threads_per_rank(int cores_allowed, int cores_total, int local_world) {
  if (cores_total < 1) cores_total = 1;
  if (cores_allowed >= 1 && cores_allowed < cores_total) return cores_allowed;
  return std::max(1, cores_total / std::max(1, local_world));
}

// Finalises MPI when the Runtime ends normally. When the Runtime constructor throws, MPI stays up
// so that run_guarded can still abort the other ranks (finalising would wait for them forever).
struct Runtime::MpiSession {
  MpiSession() : exceptions_(std::uncaught_exceptions()) { comm::mpi_initialize(); }
  ~MpiSession() {
    if (std::uncaught_exceptions() <= exceptions_) comm::mpi_finalize();
  }
  int exceptions_;
};

Runtime::Runtime(CommChoice choice) {
  const LauncherInfo launcher = detect_launcher();
  rank_ = launcher.rank;
  world_ = launcher.world;
  local_rank_ = launcher.local_rank;
  local_world_ = launcher.local_world;
  set_identity({"", rank_, world_});
  host_ = identity().host;

  const bool want_mpi = choice == CommChoice::kMpi || choice == CommChoice::kNccl ||
                        (choice == CommChoice::kAuto && !launcher.launcher.empty() &&
                         (comm::mpi_built() || launcher.world > 1));
  if (choice == CommChoice::kNone && launcher.world > 1) {
    fail(ErrorKind::kUsage, "--comm none, but {} started this process as rank {} of {}",
         launcher.launcher, launcher.rank, launcher.world);
  }
  if (want_mpi) {
    mpi_ = std::make_unique<MpiSession>();
    const comm::MpiPlacement placement = comm::mpi_placement();
    if (launcher.world > 1 && placement.size != launcher.world) {
      fail(ErrorKind::kUsage,
           "{} started {} tasks but MPI sees {} (with srun, pass the MPI plugin: srun --mpi=pmix)",
           launcher.launcher, launcher.world, placement.size);
    }
    rank_ = placement.rank;
    world_ = placement.size;
    local_rank_ = placement.local_rank;
    local_world_ = placement.local_size;
    set_identity({host_, rank_, world_});
  }

  const int gpus = comm::cuda_device_count();
  device_ = gpus > 0 ? local_rank_ % gpus : -1;

  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    threads_ = threads_per_rank(
        cores_allowed(), static_cast<int>(std::thread::hardware_concurrency()), local_world_);
    omp_set_num_threads(threads_);
  } else {
    threads_ = omp_get_max_threads();
  }
  kernels::set_blas_threads(threads_);

  const bool mpi_running = mpi_ != nullptr;
  every_rank_has_gpu_ = mpi_running ? comm::mpi_all_min(device_ >= 0 ? 1 : 0) == 1 : device_ >= 0;
  const bool every_rank_has_gpu = every_rank_has_gpu_;
  switch (choice) {
    case CommChoice::kNone:
      comm_ = comm::make_local_communicator();
      break;
    case CommChoice::kMpi:
      comm_ = comm::make_mpi_communicator();
      break;
    case CommChoice::kNccl:
      if (!comm::nccl_built()) {
        fail(ErrorKind::kUsage, "--comm nccl, but this skim-dist was built without NCCL");
      }
      if (!every_rank_has_gpu) {
        fail(ErrorKind::kUsage, "--comm nccl, but rank {} on {} sees no GPU", rank_, host_);
      }
      comm_ = comm::make_nccl_communicator(device_);
      break;
    case CommChoice::kAuto:
      if (mpi_running && comm::nccl_built() && every_rank_has_gpu) {
        comm_ = comm::make_nccl_communicator(device_);
      } else if (mpi_running) {
        comm_ = comm::make_mpi_communicator();
      } else {
        comm_ = comm::make_local_communicator();
      }
      break;
  }
  if (world_ > 1) {
    log::info("{} ranks ({} per node), communicator {}, {} threads per rank, {}", world_,
              local_world_, comm::backend_name(comm_->backend()), threads_,
              device_ >= 0 ? "GPU per local rank" : "no GPU");
  }
}

Runtime::~Runtime() {
  comm_.reset();  // before MPI_Finalize (mpi_ is destroyed after this body)
}

Runtime& runtime() {
  if (g_current == nullptr) fail(ErrorKind::kInternal, "runtime() called outside run_guarded");
  return *g_current;
}

int run_guarded(CommChoice choice, const std::function<void(Runtime&)>& body) {
  std::unique_ptr<Runtime> rt;
  // Prints the one error line, then makes sure no other rank keeps waiting for this one.
  auto report = [&](std::string_view message, int status) -> int {
    log::error("{}", message);
    g_current = nullptr;
    if (rt != nullptr && rt->world() > 1) {
      rt->comm().abort(fmt::format("{}: aborting all {} ranks", rank_tag(), rt->world()), status);
    }
    if (rt == nullptr && comm::mpi_is_initialized()) {
      if (comm::mpi_world_size() > 1) comm::mpi_abort(status);
      comm::mpi_finalize();
    }
    return status;
  };
  set_fault_hook(&fault_point);  // fault points below the pipeline (src/core/fault_hook.h)
  try {
    rt = std::make_unique<Runtime>(choice);
    g_current = rt.get();
    fault_point("startup");
    body(*rt);
    g_current = nullptr;
    rt.reset();
    return 0;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kStopped) {
      // Every rank agreed on this stop in a collective: no rank is left waiting, so no abort.
      log::info("{}", e.what());
      g_current = nullptr;
      rt.reset();
      return exit_status(e.kind());
    }
    return report(e.what(), exit_status(e.kind()));
  } catch (const std::exception& e) {
    return report(fmt::format("internal error: {}", e.what()), 3);
  }
}

}  // namespace skim::launch
