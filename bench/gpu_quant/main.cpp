// Per-layer time by phase of SKIM on the GPU at LLaMA-2-7B and -70B decoder-layer shapes, with
// synthetic weights and calibration activations generated on the device. The CPU twins run on
// the first --cpu-rows rows of every linear layer and are extrapolated linearly in rows (every
// CPU phase is per row: K-means, and GEMMs with the row count as one dimension).
// Writes bench/results/gpu_quant-<device>.json.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench/gpu_quant/synthetic.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/quant_kernels.h"
#include "src/core/error.h"
#include "src/core/tensor.h"
#include "src/pipeline/quant_device_steps.h"
#include "src/quant/allocation.h"
#include "src/quant/error_table.h"
#include "src/quant/lut_refinement.h"
#include "src/quant/scale_training.h"

namespace {

using namespace skim;
using kernels::gpu::DeviceArray;
using clock_type = std::chrono::steady_clock;

struct Linear {
  std::string name;
  int64_t rows, cols;
  int input;  // index of the Hessian it uses
};

struct Shape {
  std::string name;
  int64_t hidden, intermediate, kv;
  std::vector<Linear> linears() const {
    return {{"q_proj", hidden, hidden, 0},
            {"k_proj", kv, hidden, 0},
            {"v_proj", kv, hidden, 0},
            {"o_proj", hidden, hidden, 1},
            {"gate_proj", intermediate, hidden, 2},
            {"up_proj", intermediate, hidden, 2},
            {"down_proj", hidden, intermediate, 3}};
  }
  std::vector<int64_t> inputs() const { return {hidden, hidden, hidden, intermediate}; }
};

double seconds(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Runs f and returns its wall time with the device drained before and after.
template <typename F>
double timed(F&& f) {
  bench::device_synchronize();
  const auto t0 = clock_type::now();
  f();
  bench::device_synchronize();
  return seconds(t0);
}

struct Options {
  std::vector<std::string> shapes = {"7b", "70b"};
  int64_t tokens = 4096;
  double bits = 3.0;
  int steps = skim::quant::ScaleTrainingOptions{}.steps;  // the pipeline's default
  int64_t cpu_rows = 32;
  std::string out;
};

nlohmann::json run_shape(const Shape& shape, const Options& opt) {
  nlohmann::json js;
  js["shape"] = shape.name;
  std::map<std::string, double> total;
  // Hessians: activations generated on the device in token chunks, one SYRK per chunk.
  std::vector<DeviceArray<float>> hs;
  double t_hessian = 0.0;
  for (size_t in = 0; in < shape.inputs().size(); ++in) {
    const int64_t n = shape.inputs()[in];
    DeviceArray<double> sum(static_cast<size_t>(n * n));
    kernels::gpu::DeviceArray<float> scratch(static_cast<size_t>(n * n));
    hs.emplace_back(static_cast<size_t>(n * n));
    const int64_t chunk = std::min<int64_t>(opt.tokens, 2048);
    DeviceArray<float> x(static_cast<size_t>(chunk * n));
    kernels::gpu::device_memset_zero(sum.data(), sum.bytes(), nullptr);
    int64_t done = 0;
    uint64_t seed = 1000 + in;
    t_hessian += timed([&] {
      while (done < opt.tokens) {
        const int64_t t = std::min(chunk, opt.tokens - done);
        bench::device_random(x.data(), t * n, seed++, 1.0f, false);
        kernels::gpu::hessian_accumulate(x.data(), t, n, sum.data(), scratch.data(), nullptr);
        done += t;
      }
      kernels::gpu::hessian_mean(sum.data(), opt.tokens, n, hs.back().data(), nullptr);
    });
  }
  total["hessian"] = t_hessian;

  nlohmann::json layers = nlohmann::json::array();
  for (const Linear& lin : shape.linears()) {
    const int64_t rows = lin.rows, cols = lin.cols;
    const float* h = hs[static_cast<size_t>(lin.input)].data();
    DeviceArray<float> w(static_cast<size_t>(rows * cols)), f(static_cast<size_t>(cols));
    bench::device_random(w.data(), rows * cols, 7 + static_cast<uint64_t>(rows * 31 + cols), 0.02f,
                         true);
    bench::device_diagonal(h, cols, f.data());
    const kernels::gpu::RowWeights fw{f.data(), 0};
    std::map<std::string, double> t;

    DeviceArray<double> e(static_cast<size_t>(rows * 4));
    t["error_table"] = timed([&] {
      kernels::gpu::error_table(w.data(), h, fw, rows, cols, 1, 4, kernels::gpu::KMeansMode::kLloyd,
                                kernels::gpu::LutStorage::kQ8, e.data(), nullptr);
    });
    quant::ErrorTable table;
    quant::BitAllocation alloc;
    t["allocation"] = timed([&] {
      table.rows = rows;
      table.b_min = 1;
      table.b_max = 4;
      table.e = e.to_host();
      alloc = quant::allocate_bits(table, cols, opt.bits, true);
    });
    std::vector<int> k(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) k[i] = 1 << alloc.bits[i];
    DeviceArray<int> dk(k);
    DeviceArray<uint8_t> labels(static_cast<size_t>(rows * cols));
    DeviceArray<float> cent(static_cast<size_t>(rows * 16)), alpha(static_cast<size_t>(cols));
    const kernels::gpu::KMeansLevelOut out{cent.data(), 16, labels.data(), nullptr};
    t["kmeans"] = timed([&] {
      kernels::gpu::kmeans_rows_varying_k(w.data(), fw, nullptr, rows, cols, dk.data(), 16,
                                          kernels::gpu::KMeansMode::kLloyd, out, nullptr);
    });
    quant::ScaleTrainingOptions schedule;  // the CPU path's learning-rate schedule
    schedule.steps = opt.steps;
    t["scale_training"] = timed([&] {
      kernels::gpu::train_scales(w.data(), h, fw, labels.data(), dk.data(), 16, rows, cols,
                                 opt.steps, schedule.lr(), schedule.lr_decay_every(),
                                 schedule.lr_decay, alpha.data(), nullptr);
    });
    t["regroup"] = timed([&] {
      kernels::gpu::kmeans_rows_varying_k(w.data(), fw, alpha.data(), rows, cols, dk.data(), 16,
                                          kernels::gpu::KMeansMode::kLloyd, out, nullptr);
    });
    {  // The refinement as the pipeline runs it: systems on the device, solves on the host.
      Tensor wt({rows, cols}), ht({cols, cols});
      kernels::gpu::copy_to_host(wt.data(), w.data(), w.bytes(), nullptr);
      kernels::gpu::copy_to_host(ht.data(), h, static_cast<size_t>(cols * cols) * sizeof(float),
                                 nullptr);
      const std::vector<uint8_t> lab = labels.to_host();
      const std::vector<float> al = alpha.to_host(), c = cent.to_host();
      std::vector<std::vector<double>> lut(static_cast<size_t>(rows));
      for (int64_t i = 0; i < rows; ++i)
        lut[i].assign(c.begin() + i * 16, c.begin() + i * 16 + k[i]);
      t["refine"] = timed([&] {
        quant::refine_luts_full_hessian(
            wt, ht, lab, al, lut, {},
            [](const quant::RefineProblem& p) { return pipeline::cuda_refine_systems(0, p); });
      });
    }
    std::vector<int64_t> off(static_cast<size_t>(rows), 0);
    std::vector<uint8_t> bits8(alloc.bits.begin(), alloc.bits.end());
    int64_t bytes = 0;
    for (int64_t i = 0; i < rows; ++i) {
      off[i] = bytes;
      bytes += (cols * alloc.bits[i] + 7) / 8;
    }
    DeviceArray<int64_t> doff(off);
    DeviceArray<uint8_t> dbits(bits8), packed(static_cast<size_t>(bytes));
    t["pack"] = timed([&] {
      kernels::gpu::pack_indices(labels.data(), dbits.data(), doff.data(), rows, cols,
                                 packed.data(), nullptr);
    });

    nlohmann::json lj;
    lj["name"] = lin.name;
    lj["rows"] = rows;
    lj["cols"] = cols;
    lj["average_bits"] = alloc.average_bits;
    double gpu_sum = 0.0;
    for (const auto& [phase, s] : t) {
      lj["gpu_s"][phase] = s;
      total[phase] += s;
      gpu_sum += s;
    }
    lj["gpu_total_s"] = gpu_sum;

    if (opt.cpu_rows > 0) {  // CPU twins on a sample of rows, extrapolated
      const int64_t cr = std::min(opt.cpu_rows, rows);
      std::vector<float> wh(static_cast<size_t>(rows * cols));
      kernels::gpu::copy_to_host(wh.data(), w.data(), wh.size() * sizeof(float), nullptr);
      Tensor wt({cr, cols}, std::vector<float>(wh.begin(), wh.begin() + cr * cols));
      Tensor ht({cols, cols});
      kernels::gpu::copy_to_host(ht.data(), h, static_cast<size_t>(cols * cols) * sizeof(float),
                                 nullptr);
      std::vector<float> fh(static_cast<size_t>(cols));
      for (int64_t j = 0; j < cols; ++j) fh[j] = ht.at(j, j);
      auto t0 = clock_type::now();
      const quant::ErrorTable ct = quant::build_error_table(wt, ht, {fh.data(), 0}, 1, 4);
      const double cpu_table = seconds(t0) * static_cast<double>(rows) / static_cast<double>(cr);
      std::vector<uint8_t> cb(alloc.bits.begin(), alloc.bits.begin() + cr);
      quant::ScaleTrainingOptions so;
      so.steps = opt.steps;
      so.refine_full_hessian = false;
      t0 = clock_type::now();
      quant::scaled_kmeans(wt, ht, {fh.data(), 0}, cb, so);
      const double cpu_scaled = seconds(t0) * static_cast<double>(rows) / static_cast<double>(cr);
      const double gpu_scaled = t["kmeans"] + t["scale_training"] + t["regroup"];
      lj["cpu_rows_sampled"] = cr;
      lj["cpu_extrapolated_s"] = {{"error_table", cpu_table}, {"scaled_kmeans", cpu_scaled}};
      lj["cpu_over_gpu"] = {{"error_table", cpu_table / t["error_table"]},
                            {"scaled_kmeans", cpu_scaled / gpu_scaled}};
      total["cpu_error_table_extrapolated"] += cpu_table;
      total["cpu_scaled_kmeans_extrapolated"] += cpu_scaled;
      (void)ct;
    }
    layers.push_back(lj);
    std::printf("%s %s [%lld x %lld]: %.2f s on the GPU\n", shape.name.c_str(), lin.name.c_str(),
                static_cast<long long>(rows), static_cast<long long>(cols), gpu_sum);
    std::fflush(stdout);
  }
  double gpu_layer = 0.0;
  for (const auto& [phase, s] : total) {
    js["decoder_layer_s"][phase] = s;
    if (phase.rfind("cpu_", 0) != 0) gpu_layer += s;
  }
  js["decoder_layer_gpu_total_s"] = gpu_layer;
  js["linears"] = layers;
  return js;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"GPU quantization kernels: per-layer time by phase"};
  app.add_option("--shapes", opt.shapes, "7b and/or 70b");
  app.add_option("--tokens", opt.tokens, "calibration tokens per Hessian");
  app.add_option("--bits", opt.bits, "bit budget per weight");
  app.add_option("--steps", opt.steps, "Adam steps of the scale training");
  app.add_option("--cpu-rows", opt.cpu_rows, "rows per linear for the CPU twins (0: skip)");
  app.add_option("--out", opt.out, "result file (default bench/results/gpu_quant-<device>.json)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (skim::kernels::gpu::device_count() == 0) {
      std::fprintf(stderr, "bench_gpu_quant: no CUDA device\n");
      return 3;
    }
    const std::string device = skim::bench::device_name();
    nlohmann::json result;
    result["device"] = device;
    // SKIM_GIT_COMMIT: set by scripts/gpu_check.sh, which runs the binary away from the checkout.
    const char* commit = std::getenv("SKIM_GIT_COMMIT");
    result["git_commit"] = commit != nullptr ? commit : "";
    result["tokens"] = opt.tokens;
    result["bits"] = opt.bits;
    result["steps"] = opt.steps;
    result["target"] = "70b decoder layer (skim phases) <= 90 s";
    for (const std::string& s : opt.shapes) {
      if (s == "7b")
        result["shapes"].push_back(run_shape({"llama2-7b", 4096, 11008, 4096}, opt));
      else if (s == "70b")
        result["shapes"].push_back(run_shape({"llama2-70b", 8192, 28672, 1024}, opt));
      else
        throw skim::Error(skim::ErrorKind::kUsage, "bench_gpu_quant: unknown shape " + s);
    }
    std::string file = opt.out;
    if (file.empty()) {
      std::string tag = device;
      for (char& c : tag)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
      file = std::string(SKIM_SOURCE_DIR) + "/bench/results/gpu_quant-" + tag + ".json";
    }
    std::ofstream(file) << result.dump(2) << "\n";
    std::printf("wrote %s\n", file.c_str());
  } catch (const skim::Error& e) {
    std::fprintf(stderr, "bench_gpu_quant: %s\n", e.what());
    return skim::exit_status(e.kind());
  }
  return 0;
}
