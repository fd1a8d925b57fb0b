#include "src/pipeline/sensitivity.h"

#include <algorithm>
#include <array>
#include <memory>

#include "src/core/error.h"
#include "src/model/linear.h"
#include "src/model/llama_model.h"
#include "src/pipeline/decoder_backend.h"
#include "src/quant/hessian.h"
#include "src/quant/layer_error.h"
#include "src/quant/lut_layer.h"
#include "src/quant/skim_layer.h"

namespace skim::pipeline {
namespace {

constexpr int64_t kKinds = model::kLinearKindCount;
// The replacement of one linear and its error on the damped H.
struct Replacement {
  Tensor w_hat;
  double error = 0.0;
};

Replacement kmeans_replacement(const Tensor& w, Tensor h, int bits, const QuantizeOptions& o) {
  quant::damp_hessian(h, o.damp);
  const quant::LutLayer q = quant::quantize_kmeans_layer(
      w, h, bits, quant::ImportanceKind::kHessianDiagonal,
      o.exact_kmeans ? quant::KMeansSolver::kExact : quant::KMeansSolver::kLloyd);
  Replacement r{quant::dequantize(q), 0.0};
  r.error = quant::layer_error(w, r.w_hat, h);
  return r;
}

}  // namespace

std::vector<LinearSensitivity> measure_sensitivity(comm::Communicator& comm,
                                                   const io::ModelSource& source,
                                                   const SensitivityInput& in,
                                                   const QuantizeOptions& options) {
  const ModelConfig& c = source.config();
  const int64_t n = c.num_layers, d = c.hidden_size;
  const int64_t tokens = in.windows * in.seq;
  if (tokens <= 0) fail(ErrorKind::kUsage, "sensitivity: no tokens to measure on");
  const auto ends = model::LlamaModel::load(source, model::LlamaModel::Layers::kStream);

  // The layer forwards, the head and the KL on the chosen device (decoder_backend.h).
  const std::unique_ptr<DecoderBackend> backend =
      make_decoder_backend(options.device, c, options.cuda_device);
  // Runs the backend's layer over `hidden`, one window per call as the calibration forward: a
  // stream's bits do not depend on its rank.
  const auto forward = [&](Tensor& hidden) {
    backend->load_states(hidden.data(), tokens);
    backend->run_layer(in.windows, in.seq, 1, {});
    backend->store_states(hidden.data());
  };

  Tensor base({tokens, d});
  ends.embed(in.tokens, tokens, base.data());
  struct Stream {
    int64_t id;
    Tensor hidden;
  };
  std::vector<Stream> streams;  // this rank's perturbed copies
  std::vector<LinearSensitivity> out(static_cast<size_t>(n * kKinds));
  for (int64_t l = 0; l < n; ++l) {
    model::DecoderLayer layer = model::DecoderLayer::load(source, l);
    backend->set_layer(layer);
    for (auto& s : streams) forward(s.hidden);
    std::array<Tensor, 4> hessians;  // read once per group (q, k and v share one)
    for (int64_t k = 0; k < kKinds; ++k) {
      const int64_t id = l * kKinds + k;
      if (id % comm.size() != comm.rank()) continue;
      const auto kind = model::kLinearKinds[static_cast<size_t>(k)];
      const auto& dense = dynamic_cast<const model::DenseLinear&>(layer.linear(kind));
      const auto group = model::linear_group(kind);
      Tensor& h = hessians[static_cast<size_t>(group)];
      if (h.numel() == 0) h = in.hessian(l, group);
      Replacement r = kmeans_replacement(dense.weight(), h, in.bits, options);
      out[static_cast<size_t>(id)].error = r.error;
      auto original = layer.replace_linear(
          kind, std::make_unique<model::DenseLinear>(std::move(r.w_hat), dense.bias()));
      Stream s{id, base};
      backend->update_linear(layer, kind);
      forward(s.hidden);
      layer.replace_linear(kind, std::move(original));
      backend->update_linear(layer, kind);
      streams.push_back(std::move(s));
    }
    forward(base);
    in.after_layer(l);
  }

  // The full model's log-probabilities, then each stream's KL against them.
  backend->load_states(base.data(), tokens);
  backend->reference_log_probs(ends);
  for (auto& s : streams) {
    backend->load_states(s.hidden.data(), tokens);
    out[static_cast<size_t>(s.id)].kl =
        backend->kl_to_reference(ends) / static_cast<double>(tokens);
    s.hidden = Tensor();
  }

  // Each entry was computed on one rank (zeros elsewhere): the sums are exact.
  std::vector<double> flat(out.size() * 2);
  for (size_t i = 0; i < out.size(); ++i) {
    flat[2 * i] = out[i].kl;
    flat[2 * i + 1] = out[i].error;
  }
  comm.all_reduce_sum(flat.data(), static_cast<int64_t>(flat.size()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = {flat[2 * i], flat[2 * i + 1]};
  return out;
}

}  // namespace skim::pipeline
