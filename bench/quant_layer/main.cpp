// Times SKIM on one synthetic layer per shape, by phase: error tables (K-means at every level +
// error GEMMs), allocation, grouping K-means, scale training, LUT refinement; plus the kmeans
// baseline. Writes bench/results/quant_layer-<host>.json with the machine and git commit.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/machine_info.h"
#include "src/core/error.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/skim_layer.h"
#include "tests/quant/synthetic_layer.h"

namespace {

using skim::bench::command_output;
using skim::bench::host_name;

// CPU seconds of the whole process (all threads): on a shared machine the wall time depends on
// the load, this much less.
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string load_average() {
  return command_output("cut -d' ' -f1-3 /proc/loadavg");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace skim;
  using namespace skim::quant;
  CLI::App app{"Per-phase timing of SKIM on synthetic layers"};
  std::vector<std::string> shapes{"4096x4096"};
  double bits = 3.0;
  int steps = 120;
  bool refine = true;
  int b_max = 4;
  std::string lut = "f16";
  bool grid_rows = false;
  std::string out_path;
  app.add_option("--shapes", shapes,
                 "rows x cols, e.g. 4096x4096 11008x4096 4096x11008 8192x28672");
  app.add_option("--bits", bits, "average stored bits per weight");
  app.add_option("--steps", steps, "Adam steps of the scale training");
  app.add_option("--refine", refine, "full-Hessian LUT refinement");
  app.add_option("--b-max", b_max, "most bits of a row");
  app.add_option("--lut", lut, "LUT entries as stored: f16, q8 or d8 (the error is measured after)")
      ->check(CLI::IsMember({"f16", "q8", "d8"}));
  app.add_option("--grid-rows", grid_rows, "offer grid rows to the allocation (q8 / d8)");
  app.add_option("--out", out_path, "output JSON (default bench/results/quant_layer-<host>.json)");
  CLI11_PARSE(app, argc, argv);
  const std::string host = host_name();
  if (out_path.empty())
    out_path = std::string(SKIM_SOURCE_DIR) + "/bench/results/quant_layer-" + host + ".json";

  nlohmann::json report;
  report["benchmark"] = "quant_layer";
  report["machine"] = {
      {"host", host},
      {"cpu", command_output("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'")},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"omp_wait_policy", command_output("printenv OMP_WAIT_POLICY")},
      {"omp_num_threads", command_output("printenv OMP_NUM_THREADS")},
      {"openblas_num_threads", command_output("printenv OPENBLAS_NUM_THREADS")}};
  report["git_commit"] =
      command_output(std::string("git -C ") + SKIM_SOURCE_DIR + " rev-parse HEAD 2>/dev/null");
  const LutEntries entries = lut == "q8"   ? LutEntries::kQ8
                             : lut == "d8" ? LutEntries::kD8
                                           : LutEntries::kF16;
  report["settings"] = {{"bits", bits}, {"steps", steps},        {"refine", refine},
                        {"b_min", 1},   {"b_max", b_max},        {"solver", "lloyd"},
                        {"lut", lut},   {"grid_rows", grid_rows}};
  report["results"] = nlohmann::json::array();
  try {
    for (const std::string& s : shapes) {
      int64_t rows = 0, cols = 0;
      if (std::sscanf(s.c_str(), "%ldx%ld", &rows, &cols) != 2 || rows <= 0 || cols <= 0)
        fail(ErrorKind::kUsage, "--shapes: '{}' is not ROWSxCOLS", s);
      std::cerr << "shape " << s << ": generating\n";
      auto t0 = std::chrono::steady_clock::now();
      const auto L = testing::make_synthetic_layer_fast(rows, cols, 1234);
      Tensor w({rows, cols}, L.w);
      Tensor h({cols, cols});
      for (size_t k = 0; k < L.h.size(); ++k) h.data()[k] = static_cast<float>(L.h[k]);
      damp_hessian(h);
      const double gen_s = seconds_since(t0);

      t0 = std::chrono::steady_clock::now();
      const LutLayer km = quantize_kmeans_layer(w, h, 3);
      const double km_s = seconds_since(t0);
      const double km_err = layer_error(w, dequantize(km), h);

      SkimOptions opt;
      opt.bits = bits;
      opt.scale.steps = steps;
      opt.scale.refine_full_hessian = refine;
      opt.b_max = b_max;
      opt.allocation.entries = entries;
      opt.grid_rows = grid_rows;
      std::cerr << "shape " << s << ": skim\n";
      const std::string load_before = load_average();
      const double cpu0 = process_cpu_s();
      t0 = std::chrono::steady_clock::now();
      SkimLayerResult r = quantize_skim_layer(w, h, opt);
      const double total_s = seconds_since(t0);
      const double cpu_s = process_cpu_s() - cpu0;
      if (entries == LutEntries::kQ8) encode_codebook_q8(r.layer);
      if (entries == LutEntries::kD8) encode_codebook_d8(r.layer);
      const double err = layer_error(w, dequantize(r.layer), h);
      int64_t grid = 0;
      for (uint8_t g : r.layer.grid_rows) grid += g;
      nlohmann::json j = {
          {"shape", s},
          {"rows", rows},
          {"cols", cols},
          {"generate_s", gen_s},
          {"kmeans_baseline_3bit_s", km_s},
          {"kmeans_baseline_3bit_error", km_err},
          {"kmeans_baseline_3bit_bits",
           static_cast<double>(lut_stored_bits(km)) / static_cast<double>(w.numel())},
          {"skim_total_s", total_s},
          {"skim_cpu_s", cpu_s},
          {"load_average_before", load_before},
          {"load_average_after", load_average()},
          {"error_table_s", r.times.error_table_s},
          {"allocation_s", r.times.allocation_s},
          {"grouping_kmeans_s", r.times.kmeans_s},
          {"scale_training_s", r.times.scale_training_s},
          {"scale_training_per_step_s", steps > 0 ? r.times.scale_training_s / steps : 0.0},
          {"refine_s", r.times.refine_s},
          {"skim_bits", r.allocation.average_bits},
          {"grid_rows", grid},
          {"skim_error", err},
          {"skim_error_unscaled", r.scale.error_unscaled},
          {"skim_error_trained", r.scale.error_trained},
      };
      std::cerr << j.dump() << "\n";
      report["results"].push_back(j);
    }
  } catch (const Error& e) {
    std::cerr << "bench_quant_layer: " << e.what() << "\n";
    return 2;
  }
  std::ofstream(out_path) << report.dump(2) << "\n";
  std::cerr << "wrote " << out_path << "\n";
  return 0;
}
