// The error tables global mode keeps on disk (etable-*.bin): a table with reserved-weight
// errors comes back whole; a table in the layout written before them (0.6.0, whose work folders
// the fingerprint refuses anyway) and inconsistent tables are refused as bad input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/pipeline/byte_stream.h"
#include "src/pipeline/linear_quantizer.h"

namespace skim::pipeline {
namespace {

LinearErrorTable two_rows() {
  LinearErrorTable t;
  t.energy = 2.5;
  t.table.rows = 2;
  t.table.b_min = 2;
  t.table.b_max = 3;
  t.table.e = {4.0, 1.0, 5.0, 2.0};
  return t;
}

TEST(ErrorTableFile, ReservedWeightErrorsComeBackWhole) {
  LinearErrorTable t = two_rows();
  t.table.reserve_counts = {1, 3};
  t.table.e_reserved = {{3.0, 0.5, 4.0, 1.5}, {2.0, 0.25, 3.0, 1.0}};
  const auto bytes = serialize(t);
  const LinearErrorTable back = deserialize_error_table(bytes.data(), bytes.size(), "t");
  EXPECT_EQ(back.table.e, t.table.e);
  EXPECT_EQ(back.table.reserve_counts, t.table.reserve_counts);
  EXPECT_EQ(back.table.e_reserved, t.table.e_reserved);
}

TEST(ErrorTableFile, TheLayoutBeforeReservedWeightsIsRefused) {
  // Written field by field as 0.6.0 wrote it: energy, rows, bit range, errors, grid errors.
  const LinearErrorTable t = two_rows();
  ByteWriter w;
  w.put(t.energy);
  w.put(t.table.rows);
  w.put(t.table.b_min);
  w.put(t.table.b_max);
  w.put_vector(t.table.e);
  w.put_vector(std::vector<double>{});
  const auto& bytes = w.bytes();
  try {
    deserialize_error_table(bytes.data(), bytes.size(), "etable-00003.bin");
    FAIL() << "read";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("etable-00003.bin"), std::string::npos) << e.what();
  }
}

TEST(ErrorTableFile, InconsistentReservedTablesAreRefused) {
  LinearErrorTable short_part = two_rows();
  short_part.table.reserve_counts = {1};
  short_part.table.e_reserved = {{3.0, 0.5, 4.0}};
  LinearErrorTable no_weight = two_rows();
  no_weight.table.reserve_counts = {0};
  no_weight.table.e_reserved = {{3.0, 0.5, 4.0, 1.5}};
  for (const auto& t : {short_part, no_weight}) {
    const auto bytes = serialize(t);
    EXPECT_THROW(deserialize_error_table(bytes.data(), bytes.size(), "t"), Error);
  }
}

}  // namespace
}  // namespace skim::pipeline
