// What the "full-precision" reference really is: the bundled SmolLM2 is a GGUF whose decoder
// linears are stored in a block format (Q4_1: 16 levels per block of 32 weights, fp16 scale and
// min). Counts, per decoder linear, the distinct values of each row and of each block of 32
// columns after dequantization, so the comparison with other quantizers can say which structure
// the reference has. JSON (machine, commit) to bench/results/source_levels-<host>.json.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/common/machine_info.h"
#include "io/gguf.h"
#include "io/gguf_dequant.h"

namespace {

int64_t distinct(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return std::unique(v.begin(), v.end()) - v.begin();
}

double median(std::vector<int64_t> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? static_cast<double>(v[n / 2]) : 0.5 * static_cast<double>(v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace skim;
  CLI::App app{"Distinct values per row and per 32-column block of a GGUF's decoder linears"};
  std::string model = std::string(SKIM_SOURCE_DIR) + "/data/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string out_path;
  app.add_option("--model", model, "GGUF file");
  app.add_option("--out", out_path, "default bench/results/source_levels-<host>.json");
  CLI11_PARSE(app, argc, argv);

  const auto gguf = io::GgufFile::open(model);
  const std::vector<std::string> linears = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                            "ffn_gate", "ffn_up", "ffn_down"};
  std::map<std::string, int64_t> types;
  std::vector<int64_t> row_counts, row_counts_576;
  int64_t block_max = 0, blocks = 0, rows = 0;
  for (const auto& info : gguf->tensors()) {
    const auto dot = info.name.find('.', 4);
    if (info.name.rfind("blk.", 0) != 0 || dot == std::string::npos) continue;
    const std::string kind = info.name.substr(dot + 1, info.name.rfind('.') - dot - 1);
    if (std::find(linears.begin(), linears.end(), kind) == linears.end()) continue;
    ++types[io::ggml_type_name(static_cast<uint32_t>(info.type))];
    const Tensor w = gguf->dequantize(info);
    const int64_t r = w.dim(0), c = w.dim(1);
    for (int64_t i = 0; i < r; ++i) {
      const auto row = w.row(i);
      const int64_t n = distinct(std::vector<float>(row.begin(), row.end()));
      row_counts.push_back(n);
      if (c == 576) row_counts_576.push_back(n);
      for (int64_t j = 0; j + 32 <= c; j += 32) {
        block_max = std::max(block_max,
                             distinct(std::vector<float>(row.begin() + j, row.begin() + j + 32)));
        ++blocks;
      }
    }
    rows += r;
  }
  using skim::bench::command_output;
  const nlohmann::json j = {
      {"benchmark", "source_levels"},
      {"machine",
       {{"host", skim::bench::host_name()},
        {"cpu",
         command_output("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'")}}},
      {"commit", command_output("git -C " SKIM_SOURCE_DIR " rev-parse HEAD")},
      {"model", model.substr(model.rfind('/') + 1)},
      {"ggml_types", types},
      {"rows", rows},
      {"distinct_per_row_median", median(row_counts)},
      {"distinct_per_row_min",
       row_counts.empty() ? 0 : *std::min_element(row_counts.begin(), row_counts.end())},
      {"distinct_per_row_max",
       row_counts.empty() ? 0 : *std::max_element(row_counts.begin(), row_counts.end())},
      {"distinct_per_576_column_row_median", median(row_counts_576)},
      {"blocks_of_32", blocks},
      {"distinct_per_block_of_32_max", block_max}};
  if (out_path.empty())
    out_path = std::string(SKIM_SOURCE_DIR) + "/bench/results/source_levels-" +
               skim::bench::host_name() + ".json";
  std::ofstream(out_path) << j.dump(2) << "\n";
  std::cout << j.dump(2) << "\n";
  return 0;
}
