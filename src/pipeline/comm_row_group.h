#pragma once
// quant::RowGroup over a communicator: every rank of `comm` holds its row_block of the linear.
#include "comm/communicator.h"
#include "src/quant/row_group.h"

namespace skim::pipeline {

class CommRowGroup final : public quant::RowGroup {
 public:
  CommRowGroup(comm::Communicator& comm, int64_t rows);
  void ordered_sum(const double* partials, int64_t groups, int64_t width, double* out) override;
  std::vector<double> all_gather(std::span<const double> mine) override;

 private:
  comm::Communicator& comm_;
};

}  // namespace skim::pipeline
