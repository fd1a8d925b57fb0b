// Perplexity of the real SmolLM2-135M GGUF against an independent reference computed outside
// C++. The reference numbers come from
//   python3 scripts/reference_perplexity.py --model data/SmolLM2-135M-Instruct.Q4_1.gguf
//       --text data/text/prideprejudice.txt --seq-len 256 --windows 4   (one command line)
// (gguf 0.19.0 dequantizers, tokenizers 0.23.3, numpy 2.4.6; numpy float64 forward in GGUF-native
// layout with interleaved-pair RoPE, HF `tokenizers` BPE built from the GGUF vocab and merges),
// which printed
//   {"perplexity": 21.76493168248516, "mean_nll": 3.0803000361289077, "predicted_tokens": 1020,
//    "windows": 4, "seq_len": 256, "text_tokens": 167892, ...}
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/model_source.h"
#include "src/pipeline/perplexity.h"

namespace skim::testing {
namespace {

constexpr double kReferencePerplexity = 21.76493168248516;
constexpr int64_t kReferenceTextTokens = 167892;
// Measured: ours 21.7649324, relative difference 3.5e-8 (fp32 vs float64). 1e-4 still leaves
// room for another BLAS while catching small tokenization or rotation errors.
constexpr double kRelativeTolerance = 1e-4;

TEST(PerplexitySmolLM2, MatchesIndependentPythonReference) {
  const std::string model = std::string(SKIM_SOURCE_DIR) + "/data/SmolLM2-135M-Instruct.Q4_1.gguf";
  const std::string text = std::string(SKIM_SOURCE_DIR) + "/data/text/prideprejudice.txt";
  ASSERT_TRUE(std::filesystem::exists(model))
      << model << " is missing: run scripts/fetch_data.sh to download it";
  const auto source = io::open_model(model);
  pipeline::PerplexityOptions opt;
  opt.seq_len = 256;
  opt.max_windows = 4;
  const auto r = pipeline::perplexity_of_file(*source, text, opt);
  EXPECT_EQ(r.text_tokens, kReferenceTextTokens);  // same tokenization as HF tokenizers
  EXPECT_FALSE(r.bos_added);                       // add_bos_token is false in this GGUF
  EXPECT_EQ(r.windows, 4);
  EXPECT_EQ(r.predicted_tokens, 1020);
  const double rel = std::abs(r.perplexity / kReferencePerplexity - 1.0);
  RecordProperty("perplexity", fmt::format("{:.9f}", r.perplexity));
  RecordProperty("relative_difference", fmt::format("{:.3g}", rel));
  EXPECT_LT(rel, kRelativeTolerance)
      << "ours " << r.perplexity << " reference " << kReferencePerplexity;
}

}  // namespace
}  // namespace skim::testing
