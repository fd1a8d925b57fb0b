// The CPU decoder backend's embedding: the states it makes resident are the model's rows (read back
// through store_states into another buffer), and a token outside the vocabulary is refused. The
// CUDA backend's twin test is test_decoder_backend_gpu.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "src/core/error.h"
#include "src/model/llama_model.h"
#include "src/pipeline/decoder_backend.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

TEST(CpuBackend, EmbeddedStatesAreTheModelRows) {
  const testing::SyntheticSource synthetic(testing::packed_test_spec(5));
  const auto ends = model::LlamaModel::load(synthetic, model::LlamaModel::Layers::kStream);
  const int64_t count = 23, hidden = ends.config().hidden_size;
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t)
    tokens[static_cast<size_t>(t)] = static_cast<int32_t>((t * 37) % ends.config().vocab_size);
  const auto backend = make_cpu_decoder_backend();
  backend->embed_states(ends, tokens.data(), count);
  std::vector<float> got(static_cast<size_t>(count * hidden), -1.0f);
  backend->store_states(got.data());
  for (int64_t t = 0; t < count; ++t)
    for (int64_t j = 0; j < hidden; ++j)
      ASSERT_EQ(got[static_cast<size_t>(t * hidden + j)],
                ends.embedding().at(tokens[static_cast<size_t>(t)], j))
          << "token " << t << " column " << j;
  tokens[7] = -1;
  try {
    backend->embed_states(ends, tokens.data(), count);
    ADD_FAILURE() << "a negative token id was embedded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
}

}  // namespace
}  // namespace skim::pipeline
