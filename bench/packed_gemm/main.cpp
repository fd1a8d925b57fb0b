// Times quant::gemm (batch > 1) and quant::gemv (batch 1) on random 4-bit packed LUT and uniform
// layers against cblas_sgemm / cblas_sgemv on the dequantized W^ in the same run, per shape and
// batch. Writes bench/results/packed_gemm-<host>.json with the machine and git commit.
#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/machine_info.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "src/quant/packed_layer.h"

namespace {

using namespace skim;
using namespace skim::quant;

using skim::bench::command_output;
using skim::bench::host_name;

std::string load_average() {
  return command_output("cut -d' ' -f1-3 /proc/loadavg");
}

// Best of `reps` timed calls after one warm-up, at least `min_s` of timed work in all.
template <typename Fn>
double best_seconds(const Fn& fn, double min_s) {
  fn();
  double best = 1e30, total = 0.0;
  for (int rep = 0; rep < 3 || (total < min_s && rep < 50); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

std::vector<uint8_t> random_values(std::mt19937_64& rng, int64_t count, int bits) {
  std::uniform_int_distribution<int> d(0, (1 << bits) - 1);
  std::vector<uint8_t> v(static_cast<size_t>(count));
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}

std::vector<uint16_t> random_halves(std::mt19937_64& rng, int64_t count, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<uint16_t> v(static_cast<size_t>(count));
  for (auto& x : v) x = float_to_half(d(rng));
  return v;
}

PackedLutLayer random_lut(int64_t rows, int64_t cols, int bits, std::mt19937_64& rng) {
  LutLayer l;
  l.rows = rows;
  l.cols = cols;
  l.bits.assign(static_cast<size_t>(rows), static_cast<uint8_t>(bits));
  l.codebook_offset.resize(static_cast<size_t>(rows + 1));
  for (int64_t i = 0; i <= rows; ++i) l.codebook_offset[static_cast<size_t>(i)] = i << bits;
  l.codebook = random_halves(rng, rows << bits, -0.1f, 0.1f);
  l.labels = random_values(rng, rows * cols, bits);
  l.alpha = random_halves(rng, cols, 0.5f, 2.0f);
  return pack(l);
}

PackedUniformLayer random_uniform(int64_t rows, int64_t cols, int bits, int64_t group,
                                  std::mt19937_64& rng) {
  UniformLayer l;
  l.rows = rows;
  l.cols = cols;
  l.bits = bits;
  l.group_size = group;
  const int64_t groups = (cols + group - 1) / group;
  l.scale = random_halves(rng, rows * groups, 0.001f, 0.01f);
  const std::vector<uint8_t> zero = random_values(rng, rows * groups, bits);  // integer zeros
  l.zero.resize(zero.size());
  for (size_t k = 0; k < zero.size(); ++k) l.zero[k] = float_to_half(static_cast<float>(zero[k]));
  l.codes = random_values(rng, rows * cols, bits);
  return pack(l);
}

template <typename Packed>
nlohmann::json time_shape(const Packed& p, const char* kind, int64_t batch, double min_s) {
  const int64_t rows = p.rows, cols = p.cols;
  const Tensor w = dequantize(unpack(p));  // the dense baseline's matrix, fp32 [rows, cols]
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(batch * cols));
  for (auto& v : x) v = nd(rng);
  std::vector<float> y(static_cast<size_t>(batch * rows)), yd(y.size());
  double packed_s = 0.0, dense_s = 0.0;
  if (batch == 1) {
    packed_s = best_seconds([&] { gemv(p, x.data(), y.data()); }, min_s);
    dense_s = best_seconds(
        [&] {
          cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols),
                      1.0f, w.data(), static_cast<int>(cols), x.data(), 1, 0.0f, yd.data(), 1);
        },
        min_s);
  } else {
    packed_s = best_seconds([&] { gemm(p, x.data(), batch, y.data()); }, min_s);
    dense_s = best_seconds(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(batch),
                      static_cast<int>(rows), static_cast<int>(cols), 1.0f, x.data(),
                      static_cast<int>(cols), w.data(), static_cast<int>(cols), 0.0f, yd.data(),
                      static_cast<int>(rows));
        },
        min_s);
  }
  double max_rel = 0.0, scale = 0.0;
  for (size_t k = 0; k < y.size(); ++k) scale = std::max(scale, std::fabs(double(yd[k])));
  for (size_t k = 0; k < y.size(); ++k)
    max_rel = std::max(max_rel, std::fabs(double(y[k]) - yd[k]) / (scale + 1e-30));
  const double flops = 2.0 * double(batch) * double(rows) * double(cols);
  return {{"kind", kind},
          {"rows", rows},
          {"cols", cols},
          {"batch", batch},
          {"packed_s", packed_s},
          {"dense_s", dense_s},
          {"packed_over_dense", packed_s / dense_s},
          {"packed_gflops", flops / packed_s * 1e-9},
          {"dense_gflops", flops / dense_s * 1e-9},
          {"max_diff_over_max_abs", max_rel},
          {"load_average", load_average()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Packed-layer gemm / gemv against dense BLAS on the dequantized matrix"};
  std::vector<std::string> shapes{"576x576", "192x576", "1536x576", "576x1536", "4096x4096"};
  std::vector<int64_t> batches{1, 512, 4096};
  int bits = 4;
  int64_t group = 128;
  double min_s = 0.3;
  std::string out_path;
  app.add_option("--shapes", shapes, "rows x cols");
  app.add_option("--batches", batches, "batch sizes (1 times gemv, more gemm)");
  app.add_option("--bits", bits, "bits per weight of both layer kinds");
  app.add_option("--group", group, "uniform layer group size");
  app.add_option("--min-seconds", min_s, "timed work per measurement, at least");
  app.add_option("--out", out_path, "output JSON (default bench/results/packed_gemm-<host>.json)");
  CLI11_PARSE(app, argc, argv);
  const std::string host = host_name();
  if (out_path.empty())
    out_path = std::string(SKIM_SOURCE_DIR) + "/bench/results/packed_gemm-" + host + ".json";

  nlohmann::json report;
  report["benchmark"] = "packed_gemm";
  report["machine"] = {
      {"host", host},
      {"cpu", command_output("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'")},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"omp_max_threads", omp_get_max_threads()},
      {"openblas_threads", openblas_get_num_threads()},
      {"openblas_config", openblas_get_config()},
      {"omp_wait_policy", command_output("printenv OMP_WAIT_POLICY")},
      {"load_average_start", load_average()}};
  report["git_commit"] =
      command_output(std::string("git -C ") + SKIM_SOURCE_DIR + " rev-parse HEAD 2>/dev/null");
  report["git_dirty"] = !command_output(std::string("git -C ") + SKIM_SOURCE_DIR +
                                        " status --porcelain src/quant 2>/dev/null")
                             .empty();
  report["settings"] = {{"bits", bits}, {"uniform_group", group}, {"min_seconds", min_s}};
  report["results"] = nlohmann::json::array();
  try {
    std::mt19937_64 rng(1234);
    for (const std::string& s : shapes) {
      int64_t rows = 0, cols = 0;
      if (std::sscanf(s.c_str(), "%ldx%ld", &rows, &cols) != 2 || rows <= 0 || cols <= 0)
        fail(ErrorKind::kUsage, "--shapes: '{}' is not ROWSxCOLS", s);
      const PackedLutLayer lut = random_lut(rows, cols, bits, rng);
      const PackedUniformLayer uni = random_uniform(rows, cols, bits, group, rng);
      for (int64_t batch : batches) {
        for (const auto& j :
             {time_shape(lut, "lut", batch, min_s), time_shape(uni, "uniform", batch, min_s)}) {
          std::cerr << j.dump() << "\n";
          report["results"].push_back(j);
        }
      }
    }
  } catch (const Error& e) {
    std::cerr << "bench_packed_gemm: " << e.what() << "\n";
    return 2;
  }
  report["machine"]["load_average_end"] = load_average();
  std::ofstream(out_path) << report.dump(2) << "\n";
  std::cerr << "wrote " << out_path << "\n";
  return 0;
}
