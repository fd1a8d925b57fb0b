// Global bit allocation at model scale: one greedy over every row of a LLaMA-2 shaped model
// (70B: 80 layers x 7 linears, 6.7M rows, levels 1..4) on synthetic error tables (each row's
// error falls by about 4x per bit, with a per-row scale and noise). Records the solve time and
// the memory the solver adds on top of the tables (peak RSS after the solve minus before), with
// the machine, commit and load, in bench/results/allocation-<host>.json.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/common/machine_info.h"
#include "src/quant/allocation.h"
#include "tests/quant/synthetic_layer.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct Shape {
  int64_t hidden, intermediate, kv, layers;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace skim;
  using namespace skim::quant;
  CLI::App app{"Global bit allocation at model scale"};
  std::string model = "70b";
  double bits = 3.0;
  std::string out_path;
  app.add_option("--model", model, "llama-2 shape: 7b or 70b")->check(CLI::IsMember({"7b", "70b"}));
  app.add_option("--bits", bits, "average bits per weight");
  app.add_option("--out", out_path, "default bench/results/allocation-<host>.json");
  CLI11_PARSE(app, argc, argv);

  const Shape s = model == "70b" ? Shape{8192, 28672, 1024, 80} : Shape{4096, 11008, 4096, 32};
  // (rows, cols) of q, k, v, o, gate, up, down.
  const std::vector<std::pair<int64_t, int64_t>> linears = {
      {s.hidden, s.hidden},      {s.kv, s.hidden},           {s.kv, s.hidden},
      {s.hidden, s.hidden},      {s.intermediate, s.hidden}, {s.intermediate, s.hidden},
      {s.hidden, s.intermediate}};
  testing::SyntheticRng rng(5);
  std::vector<ErrorTable> tables;
  std::vector<LayerErrors> layers;
  int64_t rows = 0;
  for (int64_t l = 0; l < s.layers; ++l)
    for (const auto& [r, c] : linears) {
      ErrorTable t;
      t.rows = r;
      t.b_min = 1;
      t.b_max = 4;
      t.e.resize(static_cast<size_t>(r * 4));
      for (int64_t i = 0; i < r; ++i) {
        const double scale = std::exp(rng.normal());
        for (int b = 1; b <= 4; ++b)
          t.at(i, b) = scale * std::pow(4.0, -b) * (1.0 + 0.2 * rng.uniform());
      }
      rows += r;
      tables.push_back(std::move(t));
      layers.push_back({nullptr, c, true, 1.0});
    }
  for (size_t k = 0; k < layers.size(); ++k) layers[k].table = &tables[k];
  const double before = peak_rss_mib();
  const auto t0 = std::chrono::steady_clock::now();
  const GlobalAllocation g = allocate_bits_global(layers, bits);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double after = peak_rss_mib();

  using skim::bench::command_output;
  const nlohmann::json j = {
      {"benchmark", "allocation"},
      {"machine",
       {{"host", skim::bench::host_name()},
        {"cpu",
         command_output("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'")},
        {"load_average_before", command_output("cut -d' ' -f1-3 /proc/loadavg")}}},
      {"commit", command_output("git -C " SKIM_SOURCE_DIR " rev-parse HEAD")},
      {"model", "llama-2-" + model},
      {"rows", rows},
      {"levels", 4},
      {"bits", bits},
      {"average_bits", g.average_bits},
      {"seconds", seconds},
      {"table_mib", static_cast<double>(rows) * 4 * sizeof(double) / (1 << 20)},
      {"peak_rss_before_mib", before},
      {"peak_rss_after_mib", after},
      {"solver_mib", after - before},
      {"solver_bytes_per_row", (after - before) * (1 << 20) / static_cast<double>(rows)}};
  if (out_path.empty())
    out_path = std::string(SKIM_SOURCE_DIR) + "/bench/results/allocation-" +
               skim::bench::host_name() + ".json";
  std::ofstream(out_path) << j.dump(2) << "\n";
  std::cout << j.dump(2) << "\n";
  return 0;
}
