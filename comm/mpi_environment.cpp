#include "comm/mpi_environment.h"

#include <cstdlib>

#include "comm/mpi_check.h"
#include "src/core/error.h"

#if SKIM_HAVE_MPI
#include <mpi.h>
#endif

namespace skim::comm {

#if SKIM_HAVE_MPI

void mpi_check(int rc, const char* call, int rank) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  if (rank < 0) fail(ErrorKind::kComm, "{} failed: {}", call, text);
  fail(ErrorKind::kComm, "{} failed on rank {}: {}", call, rank, text);
}

void mpi_initialize() {
  if (mpi_is_initialized()) return;
  int provided = 0;
  // Funneled: only the main thread calls MPI; OpenMP regions never communicate.
  mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread",
            -1);
  // Errors come back as codes (and then as kComm exceptions) instead of killing the job silently.
  mpi_check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler",
            -1);
}

bool mpi_is_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  return initialized != 0;
}

void mpi_finalize() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

MpiPlacement mpi_placement() {
  MpiPlacement p;
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &p.rank), "MPI_Comm_rank", -1);
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &p.size), "MPI_Comm_size", p.rank);
  MPI_Comm node = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p.rank, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type", p.rank);
  mpi_check(MPI_Comm_rank(node, &p.local_rank), "MPI_Comm_rank", p.rank);
  mpi_check(MPI_Comm_size(node, &p.local_size), "MPI_Comm_size", p.rank);
  MPI_Comm_free(&node);
  return p;
}

int mpi_all_min(int value) {
  int result = value;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  mpi_check(MPI_Allreduce(&value, &result, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce",
            rank);
  return result;
}

int mpi_world_size() {
  if (!mpi_is_initialized()) return 1;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

void mpi_abort(int status) {
  MPI_Abort(MPI_COMM_WORLD, status == 0 ? 1 : status);
  std::_Exit(status == 0 ? 1 : status);  // MPI_Abort does not return; this is for the compiler
}

#else

void mpi_check(int rc, const char* call, int rank) {
  if (rc != 0) fail(ErrorKind::kComm, "{} failed on rank {} (code {})", call, rank, rc);
}

void mpi_initialize() {
  fail(ErrorKind::kUsage, "this skim-dist was built without MPI; run it as a single process");
}
bool mpi_is_initialized() {
  return false;
}
void mpi_finalize() {}
MpiPlacement mpi_placement() {
  return {};
}
int mpi_all_min(int value) {
  return value;
}
int mpi_world_size() {
  return 1;
}
void mpi_abort(int status) {
  std::_Exit(status == 0 ? 1 : status);
}

#endif

}  // namespace skim::comm
