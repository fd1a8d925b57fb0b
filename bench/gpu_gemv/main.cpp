// GEMV on the GPU: the packed LUT kernel at 2, 3, 4 and 6 bits and with mixed rows (2, 3 and 4 bits
// in turn: 3 bits on average) against cuBLAS fp16 in the same run, per shape and batch (1: the
// GEMV; 16: the LUT GEMM against cublasGemmEx): time, achieved bandwidth (bytes the kernel must
// read and write / time), the fraction of the device's peak bandwidth, and the two targets at
// batch 1 (3-bit at >= 70% of peak; speedup over fp16 >= 0.7 x the ratio of bytes moved). Enough
// copies of each matrix rotate that the working set exceeds the L2 three times, so the numbers
// are DRAM numbers. Writes bench/results/gpu_gemv-<device>.json.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/gpu/dense_gemm.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/lut_device_layout.h"
#include "kernels/gpu/lut_products.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace {

using namespace skim;
using namespace skim::kernels::gpu;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(ErrorKind::kNumeric, "{}: {}", what, cudaGetErrorString(e));
}

std::string command_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Peak DRAM bandwidth: memory clock (kHz, double data rate) x bus width, from the device
// attributes (cudaDeviceProp lost these fields in CUDA 13); a table when they read 0.
std::pair<double, std::string> peak_bandwidth(int device, const std::string& name) {
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  cudaGetLastError();
  if (clock_khz > 0 && bus_bits > 0)
    return {2.0 * clock_khz * 1e3 * bus_bits / 8.0, "cudaDevAttrMemoryClockRate x BusWidth"};
  if (name.find("H200") != std::string::npos) return {4.8e12, "table (H200)"};
  if (name.find("H100") != std::string::npos && name.find("PCIe") != std::string::npos)
    return {2.0e12, "table (H100 PCIe)"};
  if (name.find("H100") != std::string::npos) return {3.35e12, "table (H100 SXM)"};
  return {0.0, "unknown"};
}

// A layer whose row i has widths[i % widths.size()] bits: random label bytes (cols * bits is a
// multiple of 8 for the benchmark shapes, so every byte is payload), LUTs ~ N(0, 1), alpha in
// [0.5, 2].
quant::PackedLutLayer random_layer(int64_t rows, int64_t cols, const std::vector<int>& widths,
                                   uint32_t seed) {
  std::mt19937_64 rng(seed);
  quant::PackedLutLayer p;
  p.rows = rows;
  p.cols = cols;
  p.bits.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i)
    p.bits[static_cast<size_t>(i)] =
        static_cast<uint8_t>(widths[static_cast<size_t>(i) % widths.size()]);
  const quant::PackedLutOffsets offsets = quant::packed_lut_offsets(cols, p.bits);
  p.labels.resize(static_cast<size_t>(offsets.label.back()));
  for (size_t i = 0; i < p.labels.size(); i += 8) {
    const uint64_t r = rng();
    for (size_t k = 0; k < 8 && i + k < p.labels.size(); ++k)
      p.labels[i + k] = static_cast<uint8_t>(r >> (8 * k));
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.5f, 2.0f);
  p.codebook.resize(static_cast<size_t>(offsets.codebook.back()));
  for (auto& c : p.codebook) c = float_to_half(normal(rng));
  p.alpha.resize(static_cast<size_t>(cols));
  for (auto& a : p.alpha) a = float_to_half(scale(rng));
  return p;
}

// "1" .. "8" or "mixed" (rows of 2, 3 and 4 bits in turn).
std::vector<int> row_widths(const std::string& name) {
  if (name == "mixed") return {2, 3, 4};
  if (name.size() == 1 && name[0] >= '1' && name[0] <= '8') return {name[0] - '0'};
  fail(ErrorKind::kUsage, "--bits {}: expected 1..8 or mixed", name);
}

// Mean seconds per call of fn(i) over `iters` calls after `warmup`, timed with CUDA events.
template <typename Fn>
double time_calls(Fn&& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn(i);
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  check(cudaEventRecord(a), "cudaEventRecord");
  for (int i = 0; i < iters; ++i) fn(i);
  check(cudaEventRecord(b), "cudaEventRecord");
  check(cudaEventSynchronize(b), "cudaEventSynchronize");
  float ms = 0.0f;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms * 1e-3 / iters;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Packed LUT GEMV against cuBLAS fp16 GEMV"};
  std::vector<std::string> shapes{"4096x4096", "8192x28672", "28672x8192"};
  std::vector<std::string> widths{"2", "3", "4", "6", "mixed"};
  std::vector<int64_t> batches{1, 16};
  int iters = 200;
  std::string out_path;
  app.add_option("--shapes", shapes, "rows x cols");
  app.add_option("--bits", widths, "row widths: 1..8 or mixed");
  app.add_option("--batch", batches, "tokens per product (1: GEMV)");
  app.add_option("--iters", iters, "timed calls per measurement");
  app.add_option("--out", out_path, "output JSON (default bench/results/gpu_gemv-<device>.json)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (device_count() == 0) fail(ErrorKind::kUsage, "bench_gpu_gemv: no CUDA device");
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    const std::string name = prop.name;
    const auto [peak, peak_source] = peak_bandwidth(device, name);
    const double l2_bytes = static_cast<double>(prop.l2CacheSize);
    std::string tag = name;
    for (char& c : tag)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    if (out_path.empty())
      out_path = std::string(SKIM_SOURCE_DIR) + "/bench/results/gpu_gemv-" + tag + ".json";

    nlohmann::json report;
    report["benchmark"] = "gpu_gemv";
    report["device"] = name;
    report["sms"] = prop.multiProcessorCount;
    report["l2_bytes"] = prop.l2CacheSize;
    report["peak_bandwidth_gbps"] = peak / 1e9;
    report["peak_source"] = peak_source;
    // SKIM_GIT_COMMIT: set by scripts/gpu_check.sh, which runs the binary away from the checkout.
    const char* commit = std::getenv("SKIM_GIT_COMMIT");
    report["git_commit"] = commit != nullptr
                               ? std::string(commit)
                               : command_output("git -C " + std::string(SKIM_SOURCE_DIR) +
                                                " rev-parse HEAD 2>/dev/null");
    report["iters"] = iters;
    report["results"] = nlohmann::json::array();

    for (const std::string& shape : shapes) {
      const auto x_pos = shape.find('x');
      if (x_pos == std::string::npos) fail(ErrorKind::kUsage, "bad shape {}", shape);
      const int64_t rows = std::stoll(shape.substr(0, x_pos));
      const int64_t cols = std::stoll(shape.substr(x_pos + 1));

      // The host layouts once per shape (building one takes seconds at 28672x8192).
      std::vector<LutDeviceLayout> layouts;
      for (const std::string& width : widths)
        layouts.push_back(
            to_device_layout(random_layer(rows, cols, row_widths(width), 7), shape.c_str()));
      for (const int64_t batch : batches) {
        if (batch < 1) fail(ErrorKind::kUsage, "--batch {}: need >= 1", batch);
        // cuBLAS fp16 baseline: the GEMV at batch 1, else the GEMM (fp16 in, fp32 out).
        const double fp16_bytes =
            2.0 * rows * cols + 2.0 * cols * batch + (batch == 1 ? 2.0 : 4.0) * rows * batch;
        const int fp16_copies =
            static_cast<int>(std::clamp(3.0 * l2_bytes / (2.0 * rows * cols), 1.0, 16.0) + 0.999);
        std::vector<DeviceArray<uint16_t>> wh;
        {
          std::vector<uint16_t> host(static_cast<size_t>(rows * cols));
          std::mt19937 rng(5);
          std::normal_distribution<float> normal(0.0f, 0.02f);
          for (auto& v : host) v = float_to_half(normal(rng));
          for (int c = 0; c < fp16_copies; ++c) wh.emplace_back(host);
        }
        std::vector<uint16_t> xh_host(static_cast<size_t>(cols * batch), float_to_half(0.5f));
        DeviceArray<uint16_t> xh(xh_host), yh(static_cast<size_t>(rows));
        DeviceArray<float> yf(static_cast<size_t>(rows * batch));
        const double fp16_s = time_calls(
            [&](int i) {
              const uint16_t* w = wh[static_cast<size_t>(i % fp16_copies)].data();
              if (batch == 1)
                dense_gemv_fp16(w, rows, cols, xh.data(), yh.data(), nullptr);
              else
                dense_gemm(w, HalfType::kF16, rows, cols, xh.data(), batch, yf.data(), nullptr);
            },
            10, iters);
        wh.clear();

        std::vector<float> x_host(static_cast<size_t>(cols * batch), 0.5f);
        DeviceArray<float> x(x_host), y(static_cast<size_t>(rows * batch));
        for (size_t w = 0; w < widths.size(); ++w) {
          const std::string& width = widths[w];
          const LutDeviceLayout& layout = layouts[w];
          const double lut_bytes =
              static_cast<double>(layout.device_bytes()) + 4.0 * cols * batch + 4.0 * rows * batch;
          const int copies = static_cast<int>(
              std::clamp(3.0 * l2_bytes / static_cast<double>(layout.device_bytes()), 1.0, 64.0) +
              0.999);
          std::vector<std::unique_ptr<DeviceLutLayer>> layers;
          for (int c = 0; c < copies; ++c)
            layers.push_back(std::make_unique<DeviceLutLayer>(layout));
          const double lut_s = time_calls(
              [&](int i) {
                layers[static_cast<size_t>(i % copies)]->gemm(x.data(), batch, y.data(), nullptr);
              },
              10, iters);
          check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");

          const double lut_bw = lut_bytes / lut_s, fp16_bw = fp16_bytes / fp16_s;
          const double byte_ratio = fp16_bytes / lut_bytes;
          const double speedup = fp16_s / lut_s;
          nlohmann::json j = {
              {"shape", shape},
              {"rows", rows},
              {"cols", cols},
              {"bits", width},
              {"batch", batch},
              {"lut_bytes", lut_bytes},
              {"lut_us", lut_s * 1e6},
              {"lut_gbps", lut_bw / 1e9},
              {"lut_fraction_of_peak", peak > 0 ? lut_bw / peak : 0.0},
              {"fp16_bytes", fp16_bytes},
              {"fp16_us", fp16_s * 1e6},
              {"fp16_gbps", fp16_bw / 1e9},
              {"fp16_fraction_of_peak", peak > 0 ? fp16_bw / peak : 0.0},
              {"byte_ratio", byte_ratio},
              {"speedup_vs_fp16", speedup},
              {"copies_rotated", copies},
          };
          if (batch == 1) {
            j["target_speedup"] = 0.7 * byte_ratio;
            j["meets_speedup_target"] = speedup >= 0.7 * byte_ratio;
            if (width == "3") j["meets_bandwidth_target"] = peak > 0 && lut_bw >= 0.7 * peak;
          }
          std::printf(
              "%-11s b%-3lld %5s-bit: %8.2f us %7.1f GB/s (%4.1f%% of peak) | fp16 %8.2f us "
              "%7.1f GB/s | speedup %.2f\n",
              shape.c_str(), static_cast<long long>(batch), width.c_str(), lut_s * 1e6,
              lut_bw / 1e9, peak > 0 ? 100.0 * lut_bw / peak : 0.0, fp16_s * 1e6, fp16_bw / 1e9,
              speedup);
          report["results"].push_back(j);
        }
      }
    }
    std::ofstream(out_path) << report.dump(2) << "\n";
    std::cout << "wrote " << out_path << "\n";
  } catch (const Error& e) {
    std::cerr << "bench_gpu_gemv: " << e.what() << "\n";
    return exit_status(e.kind());
  }
  return 0;
}
