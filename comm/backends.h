#pragma once
// Creating communicators. Which backends exist is fixed at build time (MPI and NCCL are optional
// dependencies); which one a run uses is chosen by launch/ from --comm.
#include <memory>

#include "comm/communicator.h"

namespace skim::comm {

bool mpi_built();
bool nccl_built();

// One rank, no library: every collective is a copy or nothing.
std::unique_ptr<Communicator> make_local_communicator();

// Over all ranks of the MPI job (a duplicate of MPI_COMM_WORLD); host buffers. Needs
// mpi_initialize() first; throws kUsage if the build has no MPI.
std::unique_ptr<Communicator> make_mpi_communicator();

// NCCL over all ranks of the MPI job, on CUDA device `device` (rank 0 creates the unique id and
// broadcasts it over MPI). Device buffers go through NCCL; host buffers through the MPI
// communicator it was bootstrapped from, so callers may pass either. Needs mpi_initialize();
// throws kUsage if the build has no NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(int device);

}  // namespace skim::comm
