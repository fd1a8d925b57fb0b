// main() for the MPI test programs: every rank runs every test; a failure on any rank makes
// that rank exit non-zero, and mpirun then returns non-zero.
#include <gtest/gtest.h>

#include <memory>

#include "comm/backends.h"
#include "comm/mpi_environment.h"
#include "tests/comm/mpi_test_main.h"

namespace skim::comm::testing {
namespace {
std::unique_ptr<Communicator> g_world;
}

Communicator& world() {
  return *g_world;
}

}  // namespace skim::comm::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  skim::comm::mpi_initialize();
  skim::comm::testing::g_world = skim::comm::make_mpi_communicator();
  const int status = RUN_ALL_TESTS();
  skim::comm::testing::g_world->barrier();
  skim::comm::testing::g_world.reset();
  skim::comm::mpi_finalize();
  return status;
}
