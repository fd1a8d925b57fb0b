#pragma once
// Shared by the MPI test programs: the communicator of the job, created by mpi_test_main.cpp
// (which also owns MPI_Init / MPI_Finalize around RUN_ALL_TESTS).
#include "comm/communicator.h"

namespace skim::comm::testing {

Communicator& world();

}  // namespace skim::comm::testing
