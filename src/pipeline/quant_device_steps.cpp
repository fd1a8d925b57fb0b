#include "src/pipeline/quant_device_steps.h"

#include <algorithm>
#include <memory>
#include <span>
#include <vector>

#include "src/core/error.h"

#if SKIM_HAVE_CUDA
#include "comm/cuda_devices.h"
#include "kernels/gpu/device_memory.h"
#include "kernels/gpu/quant_kernels.h"
#endif

namespace skim::pipeline {

#if SKIM_HAVE_CUDA

namespace gpu = kernels::gpu;

namespace {

gpu::LutStorage lut_storage(quant::LutEntries entries) {
  switch (entries) {
    case quant::LutEntries::kF16:
      return gpu::LutStorage::kF16;
    case quant::LutEntries::kQ8:
      return gpu::LutStorage::kQ8;
    case quant::LutEntries::kD8:
      return gpu::LutStorage::kD8;
  }
  fail(ErrorKind::kInternal, "unknown LUT entries {}", static_cast<int>(entries));
}

}  // namespace

quant::ErrorTable cuda_error_table(int device, const Tensor& w, const Tensor& h,
                                   quant::ImportanceView f, int b_min, int b_max,
                                   quant::KMeansSolver solver, quant::LutEntries entries) {
  comm::cuda_select_device(device);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  quant::ErrorTable table;
  table.rows = rows;
  table.b_min = b_min;
  table.b_max = b_max;
  table.e.assign(static_cast<size_t>(rows * table.levels()), 0.0);
  if (rows == 0) return table;
  const int64_t f_count = f.row_stride == 0 ? cols : rows * f.row_stride;
  const gpu::DeviceArray<float> dw(w.data(), static_cast<size_t>(w.numel()));
  const gpu::DeviceArray<float> dh(h.data(), static_cast<size_t>(h.numel()));
  const gpu::DeviceArray<float> df(f.values, static_cast<size_t>(f_count));
  gpu::DeviceArray<double> de(table.e.size());
  gpu::error_table(
      dw.data(), dh.data(), {df.data(), f.row_stride}, rows, cols, b_min, b_max,
      solver == quant::KMeansSolver::kExact ? gpu::KMeansMode::kExact : gpu::KMeansMode::kLloyd,
      lut_storage(entries), de.data(), nullptr);
  table.e = de.to_host();
  return table;
}

namespace {

// One frozen-label problem resident on the device: W, H, f, labels and k uploaded once; the loss
// at out[cols] after the gradient out[0, cols), so one buffer is summed over the ranks.
struct DeviceScaleProblem {
  int device = 0;
  int64_t rows = 0, cols = 0;
  int k_max = 1;
  int64_t f_stride = 0;
  gpu::DeviceArray<float> w, h, f;
  gpu::DeviceArray<uint8_t> labels;
  gpu::DeviceArray<int> k;
  gpu::DeviceArray<double> log_alpha, out, gathered, sum;
};

}  // namespace

quant::ScaleObjectiveFn cuda_scale_objective(int device, const quant::ScaleProblem<float>& p,
                                             comm::Communicator* ranks) {
  comm::cuda_select_device(device);
  auto d = std::make_shared<DeviceScaleProblem>();
  d->device = device;
  d->rows = p.rows;
  d->cols = p.cols;
  d->f_stride = p.f.row_stride;
  const auto n = static_cast<size_t>(p.cols), rn = static_cast<size_t>(p.rows * p.cols);
  if (p.rows > 0) {
    d->k_max = *std::max_element(p.k, p.k + p.rows);
    d->w = gpu::DeviceArray<float>(p.w, rn);
    d->h = gpu::DeviceArray<float>(p.h, n * n);
    d->f = gpu::DeviceArray<float>(
        p.f.values, p.f.row_stride == 0 ? n : static_cast<size_t>(p.rows * p.f.row_stride));
    d->labels = gpu::DeviceArray<uint8_t>(p.labels, rn);
    d->k = gpu::DeviceArray<int>(p.k, static_cast<size_t>(p.rows));
    d->log_alpha = gpu::DeviceArray<double>(n);
  }
  d->out = gpu::DeviceArray<double>(n + 1);
  if (ranks != nullptr) {
    d->gathered = gpu::DeviceArray<double>((n + 1) * static_cast<size_t>(ranks->size()));
    d->sum = gpu::DeviceArray<double>(n + 1);
  }
  return [d, ranks](std::span<const double> log_alpha, std::vector<double>* grad) {
    const auto width = static_cast<size_t>(d->cols + 1);
    comm::cuda_select_device(d->device);
    // A rank without rows adds zeros (and still joins the ranks' sum).
    gpu::device_memset_zero(d->out.data(), d->out.bytes(), nullptr);
    if (d->rows > 0) {
      gpu::copy_to_device(d->log_alpha.data(), log_alpha.data(), d->log_alpha.bytes(), nullptr);
      gpu::scale_loss_and_grad(d->w.data(), d->h.data(), {d->f.data(), d->f_stride},
                               d->labels.data(), d->k.data(), d->k_max, d->rows, d->cols,
                               d->log_alpha.data(), d->out.data() + d->cols,
                               grad != nullptr ? d->out.data() : nullptr, nullptr);
    }
    const double* result = d->out.data();
    if (ranks != nullptr) {
      gpu::stream_synchronize(nullptr);  // the communicator runs on its own stream
      const std::vector<int64_t> counts(static_cast<size_t>(ranks->size()),
                                        static_cast<int64_t>(width));
      ranks->all_gatherv(std::span<const double>(d->out.data(), width),
                         std::span<double>(d->gathered.data(), d->gathered.size()),
                         std::span<const int64_t>(counts));
      gpu::sum_in_rank_order(d->gathered.data(), ranks->size(), d->cols + 1, d->sum.data(),
                             nullptr);
      result = d->sum.data();
    }
    std::vector<double> host(width);
    gpu::copy_to_host(host.data(), result, width * sizeof(double), nullptr);
    if (grad != nullptr) grad->assign(host.begin(), host.end() - 1);
    return host.back();
  };
}

quant::UniformLayer cuda_gptq_quantize(int device, const Tensor& w, const Tensor& h,
                                       const quant::GptqOptions& options) {
  if (!options.group_bits.empty() || options.clip_search)
    fail(ErrorKind::kInternal, "gptq on the GPU: group widths and clip search are CPU only");
  comm::cuda_select_device(device);
  quant::UniformLayer layer;
  layer.rows = w.dim(0);
  layer.cols = w.dim(1);
  layer.bits = options.bits;
  layer.group_size = options.group_size;
  const int64_t rows = layer.rows, cols = layer.cols;
  const auto groups = static_cast<size_t>(rows * layer.groups());
  layer.codes.assign(static_cast<size_t>(rows * cols), 0);
  layer.scale.assign(groups, 0);
  layer.zero.assign(groups, 0);
  if (rows == 0) return layer;
  std::vector<float> wv(w.data(), w.data() + w.numel());
  std::vector<double> hv(h.data(), h.data() + h.numel());
  // Act-order: the kernel runs the permuted problem (columns in processing order); the codes come
  // back to the original order and `perm` records the groups' columns, as on the CPU.
  if (options.act_order) {
    layer.perm = quant::act_order_permutation(hv, cols);
    std::vector<float> wp(wv.size());
    std::vector<double> hp(hv.size());
    for (int64_t k = 0; k < cols; ++k) {
      const auto j = static_cast<int64_t>(layer.perm[static_cast<size_t>(k)]);
      for (int64_t i = 0; i < rows; ++i)
        wp[static_cast<size_t>(i * cols + k)] = wv[static_cast<size_t>(i * cols + j)];
      for (int64_t l = 0; l < cols; ++l)
        hp[static_cast<size_t>(k * cols + l)] =
            hv[static_cast<size_t>(j * cols + layer.perm[static_cast<size_t>(l)])];
    }
    wv.swap(wp);
    hv.swap(hp);
  }
  const gpu::DeviceArray<float> dw(wv);
  const gpu::DeviceArray<double> dh(hv);
  gpu::DeviceArray<uint8_t> codes(layer.codes.size());
  gpu::DeviceArray<uint16_t> scale(groups), zero(groups);
  gpu::GptqDeviceOptions g;
  g.bits = options.bits;
  g.group_size = options.group_size;
  g.block_size = options.block_size;
  g.damp = options.damp;
  gpu::gptq_quantize(dw.data(), dh.data(), rows, cols, g, codes.data(), scale.data(), zero.data(),
                     nullptr);
  layer.codes = codes.to_host();
  if (options.act_order) {
    const std::vector<uint8_t> processed = layer.codes;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < cols; ++k)
        layer.codes[static_cast<size_t>(i * cols + layer.perm[static_cast<size_t>(k)])] =
            processed[static_cast<size_t>(i * cols + k)];
  }
  layer.scale = scale.to_host();
  layer.zero = zero.to_host();
  quant::validate(layer, "gptq on the GPU");
  return layer;
}

void cuda_row_kmeans(int device, const Tensor& w, quant::ImportanceView f, std::span<const int> k,
                     std::span<const float> alpha, quant::KMeansSolver solver,
                     std::vector<uint8_t>& labels, std::vector<std::vector<double>>& centroids) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  labels.assign(static_cast<size_t>(rows * cols), 0);
  centroids.assign(static_cast<size_t>(rows), {});
  if (rows == 0) return;
  comm::cuda_select_device(device);
  const int k_max = *std::max_element(k.begin(), k.end());
  const auto rn = static_cast<size_t>(rows * cols);
  const gpu::DeviceArray<float> dw(w.data(), rn);
  const gpu::DeviceArray<float> df(
      f.values, static_cast<size_t>(f.row_stride == 0 ? cols : rows * f.row_stride));
  const gpu::DeviceArray<float> da(alpha.data(), alpha.size());
  const gpu::DeviceArray<int> dk(k.data(), k.size());
  gpu::DeviceArray<float> dc(static_cast<size_t>(rows * k_max));
  gpu::DeviceArray<uint8_t> dl(rn);
  gpu::kmeans_rows_varying_k(
      dw.data(), {df.data(), f.row_stride}, da.data(), rows, cols, dk.data(), k_max,
      solver == quant::KMeansSolver::kExact ? gpu::KMeansMode::kExact : gpu::KMeansMode::kLloyd,
      {dc.data(), k_max, dl.data(), nullptr}, nullptr);
  labels = dl.to_host();
  const std::vector<float> c = dc.to_host();
  for (int64_t i = 0; i < rows; ++i)
    centroids[static_cast<size_t>(i)].assign(c.begin() + i * k_max, c.begin() + i * k_max + k[i]);
}

quant::RefineSystemsFn cuda_refine_systems(int device, const quant::RefineProblem& p) {
  comm::cuda_select_device(device);
  struct Resident {
    int device = 0;
    int64_t cols = 0;
    int k_max = 1;
    gpu::DeviceArray<float> w, h, inva, p, y;
    gpu::DeviceArray<uint8_t> labels;
    gpu::DeviceArray<int> k;
    gpu::DeviceArray<int64_t> offsets;
    gpu::DeviceArray<double> a, rhs;
  };
  auto r = std::make_shared<Resident>();
  r->device = device;
  const int64_t rows = p.w.dim(0), cols = p.w.dim(1);
  r->cols = cols;
  if (rows > 0) {
    r->k_max = *std::max_element(p.k.begin(), p.k.end());
    r->w = gpu::DeviceArray<float>(p.w.data(), static_cast<size_t>(p.w.numel()));
    r->h = gpu::DeviceArray<float>(p.h.data(), static_cast<size_t>(p.h.numel()));
    r->inva = gpu::DeviceArray<float>(quant::inverse_alpha(p.alpha));  // the twin's floats
    r->labels = gpu::DeviceArray<uint8_t>(p.labels.data(), p.labels.size());
    r->k = gpu::DeviceArray<int>(p.k.data(), p.k.size());
  }
  return [r](const quant::RefineBlock& b, std::vector<double>& a, std::vector<double>& rhs) {
    const auto n = static_cast<size_t>(b.count + 1);
    a.assign(static_cast<size_t>(b.a_off[b.count]), 0.0);
    rhs.assign(static_cast<size_t>(b.rhs_off[b.count]), 0.0);
    if (b.count <= 0) return;
    comm::cuda_select_device(r->device);
    const int64_t lines = b.line_off[b.count];
    const auto scratch = static_cast<size_t>(lines * r->cols);
    if (r->p.size() < scratch) {
      r->p = gpu::DeviceArray<float>(scratch);
      r->y = gpu::DeviceArray<float>(scratch);
    }
    if (r->offsets.size() < 3 * n) r->offsets = gpu::DeviceArray<int64_t>(3 * n);
    if (r->a.size() < a.size()) r->a = gpu::DeviceArray<double>(a.size());
    if (r->rhs.size() < rhs.size()) r->rhs = gpu::DeviceArray<double>(rhs.size());
    std::vector<int64_t> host(b.line_off.begin(), b.line_off.end());  // one upload of all three
    host.insert(host.end(), b.a_off.begin(), b.a_off.end());
    host.insert(host.end(), b.rhs_off.begin(), b.rhs_off.end());
    int64_t* off = r->offsets.data();
    gpu::copy_to_device(off, host.data(), host.size() * sizeof(int64_t), nullptr);
    const gpu::RefineInputs in{r->w.data() + b.first * r->cols,
                               r->h.data(),
                               r->labels.data() + b.first * r->cols,
                               r->inva.data(),
                               r->k.data() + b.first,
                               r->k_max,
                               r->cols};
    gpu::refine_systems(in, {b.count, lines, off, off + n, off + 2 * n}, r->p.data(), r->y.data(),
                        r->a.data(), r->rhs.data(), nullptr);
    gpu::copy_to_host(a.data(), r->a.data(), a.size() * sizeof(double), nullptr);
    gpu::copy_to_host(rhs.data(), r->rhs.data(), rhs.size() * sizeof(double), nullptr);
  };
}

quant::UniformLayer cuda_rtn_quantize(int device, const Tensor& w,
                                      const quant::RtnOptions& options) {
  quant::UniformLayer layer = quant::rtn_layer_for(w, options);
  comm::cuda_select_device(device);
  const gpu::DeviceArray<float> dw(w.data(), static_cast<size_t>(w.numel()));
  gpu::DeviceArray<uint8_t> codes(layer.codes.size());
  gpu::DeviceArray<uint16_t> scale(layer.scale.size()), zero(layer.zero.size());
  gpu::rtn_quantize(dw.data(), layer.rows, layer.cols, layer.bits, layer.group_size, codes.data(),
                    scale.data(), zero.data(), nullptr);
  layer.codes = codes.to_host();
  layer.scale = scale.to_host();
  layer.zero = zero.to_host();
  quant::validate(layer, "rtn on the GPU");
  return layer;
}

#else

quant::ErrorTable cuda_error_table(int, const Tensor&, const Tensor&, quant::ImportanceView, int,
                                   int, quant::KMeansSolver, quant::LutEntries) {
  fail(ErrorKind::kUsage, "error tables on CUDA, but this skim-dist was built without CUDA");
}

quant::ScaleObjectiveFn cuda_scale_objective(int, const quant::ScaleProblem<float>&,
                                             comm::Communicator*) {
  fail(ErrorKind::kUsage, "scale training on CUDA, but this skim-dist was built without CUDA");
}

void cuda_row_kmeans(int, const Tensor&, quant::ImportanceView, std::span<const int>,
                     std::span<const float>, quant::KMeansSolver, std::vector<uint8_t>&,
                     std::vector<std::vector<double>>&) {
  fail(ErrorKind::kUsage, "K-means on CUDA, but this skim-dist was built without CUDA");
}

quant::RefineSystemsFn cuda_refine_systems(int, const quant::RefineProblem&) {
  fail(ErrorKind::kUsage, "LUT refinement on CUDA, but this skim-dist was built without CUDA");
}

quant::UniformLayer cuda_rtn_quantize(int, const Tensor&, const quant::RtnOptions&) {
  fail(ErrorKind::kUsage, "rtn on CUDA, but this skim-dist was built without CUDA");
}

quant::UniformLayer cuda_gptq_quantize(int, const Tensor&, const Tensor&,
                                       const quant::GptqOptions&) {
  fail(ErrorKind::kUsage, "gptq on CUDA, but this skim-dist was built without CUDA");
}

#endif

}  // namespace skim::pipeline
