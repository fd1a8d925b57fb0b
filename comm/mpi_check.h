#pragma once
// Internal to comm/: turns an MPI return code into a kComm error. Takes the code as int so that
// this header needs no mpi.h.
namespace skim::comm {

// Throws kComm "<call> failed on rank <rank>: <MPI's message>" unless rc is MPI_SUCCESS.
// rank < 0 means not yet known.
void mpi_check(int rc, const char* call, int rank);

}  // namespace skim::comm
