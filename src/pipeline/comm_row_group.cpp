#include "src/pipeline/comm_row_group.h"

#include "comm/ordered_sum.h"

namespace skim::pipeline {

CommRowGroup::CommRowGroup(comm::Communicator& comm, int64_t rows)
    : RowGroup(quant::row_block(rows, comm.rank(), comm.size())), comm_(comm) {}

void CommRowGroup::ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) {
  comm::ordered_sum(comm_, partials, groups, width, out);
}

std::vector<double> CommRowGroup::all_gather(std::span<const double> mine) {
  const auto counts = comm_.all_gather_value<int64_t>(static_cast<int64_t>(mine.size()));
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  std::vector<double> all(static_cast<size_t>(total));
  comm_.all_gatherv(mine, std::span<double>(all), std::span<const int64_t>(counts));
  return all;
}

}  // namespace skim::pipeline
