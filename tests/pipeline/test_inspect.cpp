// `inspect` of a quantized folder whose layers are known by construction (packed_test_model.h:
// RTN 4 bits in groups of 16 and K-means 3 bits with a scale, alternating by layer), against
// sizes and bit counts computed here from the shapes and docs/FORMAT.md's storage rules.
#include "src/pipeline/inspect.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "src/core/error.h"
#include "src/model/llama_layer.h"
#include "tests/pipeline/packed_test_model.h"

namespace skim::pipeline {
namespace {

using testing::SyntheticSource;
using testing::SyntheticSpec;
using testing::TempFolder;

SyntheticSpec spec() {
  return testing::packed_test_spec(5);
}

// Stored bits of an RTN layer (4-bit codes, fp16 scale and zero per group of 16) and of a 3-bit
// K-means layer (packed labels, 8 fp16 LUT entries and an 8-bit width per row, fp16 alpha per
// column), from the format's rules.
int64_t rtn4_bits(int64_t rows, int64_t cols) {
  return rows * ((cols * 4 + 7) / 8) * 8 + rows * ((cols + 15) / 16) * 32;
}
int64_t kmeans3_bits(int64_t rows, int64_t cols) {
  return rows * ((cols * 3 + 7) / 8) * 8 + rows * (8 * 16 + 8) + cols * 16;
}

TEST(Inspect, QuantizedFolderBitsAndHistogramsFollowFromTheLayers) {
  const SyntheticSource source(spec());
  const TempFolder dir("inspect");
  testing::write_packed_test_model(source, dir.path());
  const auto d = inspect_model(dir.path());

  EXPECT_EQ(d["format"], "skim-dist");
  EXPECT_EQ(d["method"], "kmeans");
  EXPECT_EQ(d["config"]["num_layers"], 2);
  ASSERT_EQ(d["layers"].size(), 2u);
  int64_t model_bits = 0, model_weights = 0, rows3 = 0, rows4 = 0;
  for (int64_t i = 0; i < 2; ++i) {
    const auto& layer = d["layers"][static_cast<size_t>(i)];
    int64_t layer_bits = 0, layer_weights = 0;
    for (int k = 0; k < model::kLinearKindCount; ++k) {
      const auto kind = static_cast<model::LinearKind>(k);
      const auto shape = model::linear_shape(source.config(), kind);
      const bool attention_in = kind == model::LinearKind::kQ || kind == model::LinearKind::kK ||
                                kind == model::LinearKind::kV || kind == model::LinearKind::kGate;
      const bool rtn = attention_in == (i % 2 == 0);
      const int64_t bits = rtn ? rtn4_bits(shape.out, shape.in) : kmeans3_bits(shape.out, shape.in);
      const auto& l = layer["linears"][static_cast<size_t>(k)];
      EXPECT_EQ(l["rows"], shape.out);
      EXPECT_EQ(l["cols"], shape.in);
      EXPECT_NEAR(l["bits_per_weight"].get<double>(),
                  static_cast<double>(bits) / static_cast<double>(shape.out * shape.in), 1e-12)
          << l["name"];
      EXPECT_EQ(l["bits_histogram"], nlohmann::json({{rtn ? "4" : "3", shape.out}})) << l["name"];
      EXPECT_FALSE(l.contains("relative_error"));  // no report.json in this folder
      (rtn ? rows4 : rows3) += shape.out;
      layer_bits += bits;
      layer_weights += shape.out * shape.in;
    }
    EXPECT_NEAR(layer["bits_per_weight"].get<double>(),
                static_cast<double>(layer_bits) / static_cast<double>(layer_weights), 1e-12);
    model_bits += layer_bits;
    model_weights += layer_weights;
  }
  EXPECT_NEAR(d["bits_per_weight"].get<double>(),
              static_cast<double>(model_bits) / static_cast<double>(model_weights), 1e-12);
  EXPECT_EQ(d["bits_histogram"], nlohmann::json({{"3", rows3}, {"4", rows4}}));

  // Parameters: every quantized weight, plus embedding, head, final norm and two norms a layer.
  const int64_t h = spec().hidden, v = spec().vocab;
  EXPECT_EQ(d["parameters"].get<int64_t>(), model_weights + 2 * v * h + h + 2 * 2 * h);
  EXPECT_EQ(d["tensor_types"]["uniform"]["tensors"], 7);  // 4 + 3: the methods alternate by layer
  EXPECT_EQ(d["tensor_types"]["lut"]["tensors"], 7);

  const std::string text = render_inspect(d);
  EXPECT_NE(text.find("method kmeans"), std::string::npos) << text;
  EXPECT_NE(text.find("q_proj"), std::string::npos) << text;
}

TEST(Inspect, ReportedErrorsAreJoinedByLinearName) {
  const SyntheticSource source(spec());
  const TempFolder dir("inspect-report");
  testing::write_packed_test_model(source, dir.path());
  nlohmann::json report = {{"layers", nlohmann::json::array()}, {"fingerprint", "abc"}};
  for (int64_t i = 0; i < 2; ++i) {
    nlohmann::json linears = nlohmann::json::array();
    for (int k = 0; k < model::kLinearKindCount; ++k)
      linears.push_back({{"name", fmt::format("model.layers.{}.{}", i,
                                              model::linear_kind_name(model::LinearKind(k)))},
                         {"error", 1.0 + k},
                         {"energy", 10.0}});
    report["layers"].push_back({{"layer", i}, {"linears", linears}});
  }
  std::ofstream(std::filesystem::path(dir.path()) / "report.json") << report.dump();
  const auto d = inspect_model(dir.path());
  EXPECT_EQ(d["fingerprint"], "abc");
  // Layer error: sum of errors over sum of energies = (1 + ... + 7) / 70.
  EXPECT_NEAR(d["layers"][1]["relative_error"].get<double>(), 28.0 / 70.0, 1e-12);
  EXPECT_NEAR(d["layers"][1]["linears"][6]["relative_error"].get<double>(), 0.7, 1e-12);
}

TEST(Inspect, AMissingPathIsBadInput) {
  try {
    inspect_model("/nonexistent/model.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
  }
}

}  // namespace
}  // namespace skim::pipeline
