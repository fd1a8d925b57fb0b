#include "src/pipeline/quantize.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "comm/ordered_sum.h"
#include "io/atomic_file.h"
#include "io/calibration_documents.h"
#include "io/hf_config.h"
#include "io/model_source.h"
#include "io/packed_format.h"
#include "src/core/error.h"
#include "src/core/stopwatch.h"
#include "src/model/llama_layer.h"
#include "src/model/llama_model.h"
#include "src/pipeline/byte_stream.h"
#include "src/pipeline/calibration.h"
#include "src/pipeline/checkpoint.h"
#include "src/pipeline/comm_row_group.h"
#include "src/pipeline/decoder_backend.h"
#include "src/pipeline/exact_hessian.h"
#include "src/pipeline/fingerprint.h"
#include "src/pipeline/linear_quantizer.h"
#include "src/pipeline/packed_model_dir.h"
#include "src/pipeline/sensitivity.h"
#include "src/quant/allocation.h"
#include "src/quant/skim_layer.h"

namespace skim::pipeline {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

constexpr const auto& kKinds = model::kLinearKinds;
constexpr int kGroups = model::kLinearGroupCount;
constexpr const char* kReportFile = "report.json";

std::string linear_name(int64_t layer, model::LinearKind kind) {
  return fmt::format("model.layers.{}.{}", layer, model::linear_kind_name(kind));
}

// What identifies the calibration data in the run fingerprint: a plain-text file by its text,
// several documents by their names and texts.
std::string calibration_identity(const io::CalibrationDocuments& c) {
  if (c.format == "text") return c.documents.front().text;
  std::string id = c.format;
  for (const auto& d : c.documents) {
    id += '\0' + d.name + '\0';
    id += d.text;
  }
  return id;
}

// report.json's "calibration": the documents given, and those the windows start in.
json calibration_report(const io::CalibrationDocuments& c, const CalibrationStream& stream,
                        const CalibrationSet& set) {
  std::map<int64_t, int64_t> windows;  // document -> windows starting in it
  for (int64_t d : window_documents(set, stream)) ++windows[d];
  json used = json::array();
  for (const auto& [d, n] : windows)
    used.push_back({{"document", c.documents[static_cast<size_t>(d)].name}, {"windows", n}});
  return {{"format", c.format},
          {"documents", c.documents.size()},
          {"tokens", stream.tokens.size()},
          {"segments", stream.segment_starts.size() - 1},
          {"windows", set.samples()},
          {"window_tokens", set.samples() * set.seq_len},
          {"windows_by_document", std::move(used)}};
}

int64_t group_width(const ModelConfig& c, model::LinearGroup g) {
  switch (g) {
    case model::LinearGroup::kQkv:
    case model::LinearGroup::kGateUp:
      return c.hidden_size;
    case model::LinearGroup::kO:
      return c.num_heads * c.head_dim;
    case model::LinearGroup::kDown:
      return c.intermediate_size;
  }
  return 0;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

void check_options(const QuantizeOptions& o) {
  if (o.model.empty() || o.calib.empty() || o.out.empty())
    fail(ErrorKind::kUsage, "quantize needs --model, --calib and --out");
  if (o.allocation == Allocation::kGlobal && o.method != Method::kSkim)
    fail(ErrorKind::kUsage, "--allocation global applies to --method skim only");
  if (o.allocation == Allocation::kGlobal && o.propagation == Propagation::kQuantized)
    fail(ErrorKind::kUsage,
         "--allocation global needs --propagation fp (every layer's statistics come from one "
         "full-precision pass)");
  if (o.method == Method::kSkim && (o.bits <= o.b_min - 1e-9 || o.bits > 16))
    fail(ErrorKind::kUsage, "--bits {} is out of range for skim (b_min {})", o.bits, o.b_min);
  if (o.method == Method::kSlim && (o.group_size <= 0 || o.group_size % 8 != 0 || o.act_order))
    fail(ErrorKind::kUsage,
         "--method slim needs --group-size a positive multiple of 8 (got {}) and no --act-order",
         o.group_size);
  if (o.method == Method::kSlim && (o.bits < 2 || o.bits > 7))
    fail(ErrorKind::kUsage, "--bits {}: --method slim needs 2..7 (groups at b-1, b and b+1)",
         o.bits);
  if (o.outliers != 0.0 && o.method != Method::kSkim && o.method != Method::kClaq)
    fail(ErrorKind::kUsage, "--outliers applies to --method skim and claq only");
  if (o.method == Method::kClaq && !(o.bits >= 1.0 && o.bits <= 8.0))
    fail(ErrorKind::kUsage, "--bits {}: --method claq needs an average column width in 1..8",
         o.bits);
  if (!(o.outliers >= 0.0 && o.outliers <= 0.25))
    fail(ErrorKind::kUsage, "--outliers {}: need a fraction in [0, 0.25]", o.outliers);
  if (o.outliers_auto && (o.method != Method::kSkim || o.outliers != 0.0))
    fail(ErrorKind::kUsage, "--outliers auto applies to --method skim only");
  if (o.scale_steps < 0 || o.scale_steps > 100000)
    fail(ErrorKind::kUsage, "--scale-steps {}: need 0..100000", o.scale_steps);
  if (o.b_min < 1 || o.b_max > 8 || o.b_min > o.b_max)
    fail(ErrorKind::kUsage, "--b-min {} --b-max {}: need 1 <= b_min <= b_max <= 8", o.b_min,
         o.b_max);
  if (o.grid_rows && (o.method != Method::kSkim || o.lut_entries == quant::LutEntries::kF16))
    fail(ErrorKind::kUsage, "--grid-rows yes applies to --method skim with --lut q8 or d8 only");
}

json histogram_json(const std::map<int, int64_t>& h) {
  json j = json::object();
  for (const auto& [b, n] : h) j[std::to_string(b)] = n;
  return j;
}

json linear_report(const QuantizedLinear& q) {
  const int64_t rows = q.rows();
  const int64_t cols = q.cols();
  std::map<int, int64_t> hist;  // rows per width (claq's widths are per column)
  if (q.kind == PackedKind::kLut)
    for (uint8_t b : q.lut.bits) ++hist[b];
  else if (q.kind == PackedKind::kUniform)
    hist[q.uniform.bits] = rows;
  std::map<int, int64_t> group_hist, column_hist;
  for (uint8_t b : q.uniform.group_bits) ++group_hist[b];
  for (uint8_t b : q.column.bits) ++column_hist[b];
  return {{"name", q.name},
          {"rows", rows},
          {"cols", cols},
          {"error", q.error},
          {"energy", q.energy},
          {"relative_error", q.energy > 0 ? q.error / q.energy : 0.0},
          {"scale_gain", q.scale_gain},
          {"stored_bits", q.stored_bits},
          {"reserved_weights", q.kind == PackedKind::kLut         ? q.lut.sparse.nnz()
                               : q.kind == PackedKind::kColumnLut ? q.column.sparse.nnz()
                                                                  : 0},
          {"average_bits", static_cast<double>(q.stored_bits) / static_cast<double>(rows * cols)},
          {"bits_histogram", histogram_json(hist)},
          {"grid_rows", std::count(q.lut.grid_rows.begin(), q.lut.grid_rows.end(), uint8_t{1})},
          {"group_bits_histogram", histogram_json(group_hist)},
          {"column_bits_histogram", histogram_json(column_hist)},
          {"seconds",
           {{"error_table", q.seconds_error_table},
            {"allocation", q.seconds_allocation},
            {"kmeans", q.seconds_kmeans},
            {"scale", q.seconds_scale},
            {"total", q.seconds_total}}}};
}

class QuantizeRun {
 public:
  QuantizeRun(comm::Communicator& comm, const QuantizeOptions& o, const PipelineHooks& hooks)
      : comm_(comm), o_(o), hooks_(hooks), rank_(comm.rank()), world_(comm.size()) {}

  QuantizeSummary run() {
    start_ = Clock::now();
    check_options(o_);
    prepare();
    // A run stopped while finishing has complete outputs: only the finish is left.
    if (!finished_) {
      if (o_.allocation == Allocation::kLayer)
        layer_mode();
      else
        global_mode();
    }
    return finish();
  }

 private:
  // ---- set-up -------------------------------------------------------------------------------

  void prepare() {
    hooks_.fault_point("open_model");
    source_ = io::open_model(o_.model);
    config_ = source_->config();
    work_ = o_.out + ".partial";
    const io::CalibrationDocuments calib_docs = io::read_calibration_documents(o_.calib);
    fingerprint_ = run_fingerprint(o_, calibration_identity(calib_docs));

    // Rank 0 decides where to start; the others follow its broadcast.
    // phase (0 layers/stats, 1 quantize, 2 finished), completed, world
    int64_t start[3] = {0, 0, world_};
    if (rank_ == 0) {
      std::error_code ec;
      if (fs::exists(o_.out, ec) && !o_.overwrite)
        fail(ErrorKind::kUsage, "{}: output exists; remove it, choose another --out or --overwrite",
             o_.out);
      if (!o_.resume && !o_.overwrite && fs::exists(work_, ec))
        fail(ErrorKind::kUsage,
             "{}: a checkpoint of an earlier run; --resume to continue it, --overwrite to discard "
             "it",
             work_);
      std::optional<CheckpointState> state = read_checkpoint_state(work_);
      if (o_.resume && !state && fs::exists(work_file(kReportFile), ec)) {
        start[0] = 2;  // stopped while finishing, after the outputs were complete
      } else if (o_.resume && state) {
        if (state->fingerprint != fingerprint_)
          fail(ErrorKind::kUsage,
               "{}: the checkpoint was made with another model, calibration text or options "
               "(fingerprint {} here, {} there); remove it or rerun with the original options",
               work_, fingerprint_, state->fingerprint);
        start[0] = state->phase == "quantize" ? 1 : 0;
        start[1] = state->completed;
        start[2] = state->world;
      } else {
        fs::remove_all(work_);
      }
      fs::create_directories(fs::path(work_) / kPackedLayersFolder);
      if (!state || !o_.resume)
        write_checkpoint_state(work_, {fingerprint_, world_, first_phase(), 0});
    }
    comm_.broadcast(std::span<int64_t>(start, 3), 0);
    finished_ = start[0] == 2;
    resume_phase_ = finished_ ? 1 : start[0];
    resume_completed_ = finished_ ? config_.num_layers : start[1];
    checkpoint_world_ = static_cast<int>(start[2]);
    if (rank_ == 0 && (resume_phase_ > 0 || resume_completed_ > 0))
      hooks_.progress_line(fmt::format("resuming {} from layer {} of {} (checkpoint of {} ranks)",
                                       work_, resume_completed_, config_.num_layers,
                                       checkpoint_world_));

    hooks_.fault_point("calibration");
    auto tokenizer = source_->tokenizer();
    std::vector<std::vector<int32_t>> documents;
    for (const auto& doc : calib_docs.documents) {
      std::vector<int32_t> ids;
      if (tokenizer->add_bos() && tokenizer->bos_id() >= 0) ids.push_back(tokenizer->bos_id());
      const auto text_ids = tokenizer->encode(doc.text);
      ids.insert(ids.end(), text_ids.begin(), text_ids.end());
      documents.push_back(std::move(ids));
    }
    const CalibrationStream stream = join_documents(documents, o_.calib_seq_len);
    calib_tokens_ = static_cast<int64_t>(stream.tokens.size());
    calib_ = draw_calibration(stream, o_.calib_samples, o_.calib_seq_len, o_.seed, o_.calib);
    block_ = comm::group_block(calib_.samples(), rank_, world_);
    calib_report_ = calibration_report(calib_docs, stream, calib_);
  }

  std::string first_phase() const {
    return o_.allocation == Allocation::kLayer ? "layers" : "stats";
  }

  // The local hidden states entering layer `layer`: embedded, or from the checkpoint.
  void load_hidden(int64_t layer) {
    const int64_t d = config_.hidden_size, L = calib_.seq_len;
    if (layer == 0) {
      auto ends = model::LlamaModel::load(*source_, model::LlamaModel::Layers::kStream);
      hidden_ = Tensor({block_.count * L, d});
      ends.embed(calib_.tokens.data() + block_.first * L, block_.count * L, hidden_.data());
    } else {
      // The checkpoint may come from another rank count: take this rank's samples from the
      // blocks of the ranks that wrote them.
      hidden_ = Tensor({block_.count * L, d});
      for (int r = 0; r < checkpoint_world_; ++r) {
        const auto b = comm::group_block(calib_.samples(), r, checkpoint_world_);
        const int64_t lo = std::max(b.first, block_.first);
        const int64_t hi = std::min(b.first + b.count, block_.first + block_.count);
        if (lo >= hi) continue;
        const std::string path = hidden_file(r, layer);
        const Tensor part = read_tensor_file(path);
        if (part.shape() != std::vector<int64_t>{b.count * L, d})
          fail(ErrorKind::kBadInput, "{}: hidden states of shape {}, expected [{}, {}]", path,
               part.shape_string(), b.count * L, d);
        std::copy_n(part.data() + (lo - b.first) * L * d, (hi - lo) * L * d,
                    hidden_.data() + (lo - block_.first) * L * d);
      }
    }
  }

  std::string hidden_file(int rank, int64_t layer) const {
    return (fs::path(work_) / fmt::format("hidden-rank-{}-layer-{:05d}.bin", rank, layer)).string();
  }
  std::string hidden_file(int64_t layer) const { return hidden_file(rank_, layer); }
  std::string work_file(const std::string& name) const { return (fs::path(work_) / name).string(); }
  // Global allocation's stored Hessian of a layer's linear group.
  std::string hessian_file(int64_t layer, int group) const {
    return work_file(fmt::format("hessian-{:05d}-{}.bin", layer, group));
  }

  // ---- one layer ----------------------------------------------------------------------------

  // hidden_ through the backend's set layer (set_layer: once per layer, it uploads on CUDA), one
  // sample per call: a sample's result then does not depend on how many samples its rank holds
  // (BLAS kernels may round a row differently in calls of another size), so the output bytes do
  // not depend on the rank count. On the chosen device (decoder_backend.h): CPU in place, or
  // CUDA with the states uploaded, the captured inputs brought back for the Hessians, and the
  // states brought back after.
  void forward_samples(const model::CaptureHook& capture = {}) {
    DecoderBackend& b = backend();
    b.load_states(hidden_.data(), block_.count * calib_.seq_len);
    b.run_layer(block_.count, calib_.seq_len, 1, capture);
    b.store_states(hidden_.data());
  }

  DecoderBackend& backend() {
    if (!backend_) backend_ = make_decoder_backend(o_.device, config_, o_.cuda_device);
    return *backend_;
  }

  // Runs the local samples through `layer` (hidden_ updated in place) and returns the reduced
  // Hessians of its four linear inputs. On the CPU, when this rank's calibration tokens fit in one
  // micro-batch, it keeps every captured input of one forward; otherwise, and always on the GPU,
  // the backend makes a first forward (one window at a time, the states left as they were) for
  // the bounds that fix the fixed-point grid and a second that adds each window's inputs as they
  // come: the memory of one window, for a second forward, and on the GPU no input leaves the
  // device. The bits are the same either way.
  std::array<Tensor, kGroups> forward_and_hessians(const model::DecoderLayer& layer) {
    const int64_t seq = calib_.seq_len, samples = calib_.samples();
    std::vector<int64_t> widths;
    for (int g = 0; g < kGroups; ++g)
      widths.push_back(group_width(config_, static_cast<model::LinearGroup>(g)));
    const bool hold_all = o_.device == Device::kCpu && block_.count * seq <= o_.micro_batch;
    hooks_.fault_point("layer_forward");
    const auto t0 = Clock::now();
    DecoderBackend& b = backend();
    b.set_layer(layer);
    std::array<Tensor, kGroups> h;
    if (!hold_all) {
      b.load_states(hidden_.data(), block_.count * seq);
      const std::vector<double> local = b.window_bounds(block_.count, seq);
      times_["forward"] = seconds_since(t0);
      hooks_.fault_point("hessian");
      const auto t1 = Clock::now();
      const std::vector<double> bound = agree_bounds(comm_, local, widths);
      auto reduced = b.window_hessians(block_.count, seq, widths, bound, samples, comm_);
      b.store_states(hidden_.data());
      std::move(reduced.begin(), reduced.end(), h.begin());
      times_["hessian"] = seconds_since(t1);
      return h;
    }
    std::vector<double> local(kGroups, 0.0);
    std::array<std::vector<float>, kGroups> stash;
    forward_samples([&](model::LinearGroup g, const float* x, int64_t tokens, int64_t features) {
      auto& bound = local[static_cast<size_t>(g)];
      bound = std::max(bound, sample_bound(x, tokens, features));
      auto& v = stash[static_cast<size_t>(g)];
      v.insert(v.end(), x, x + tokens * features);
    });
    times_["forward"] = seconds_since(t0);

    hooks_.fault_point("hessian");
    const auto t1 = Clock::now();
    const std::vector<double> bound = agree_bounds(comm_, local, widths);
    for (size_t g = 0; g < kGroups; ++g) {
      ExactHessian acc(widths[g], bound[g], samples);
      acc.add_samples(stash[g].data(), block_.count, seq);
      std::vector<float>().swap(stash[g]);
      h[g] = acc.reduce(comm_, seq);
    }
    times_["hessian"] = seconds_since(t1);
    return h;
  }

  // ---- stopping at safe points --------------------------------------------------------------

  // A safe point: one all-reduce of (stop asked, work done). Every rank stops here together when
  // a signal reached any of them, once this run has done some work (so a signal at start-up
  // still lets each requeued run progress). `save` runs on every rank before the stop.
  void safe_point(bool did_work, const std::function<void()>& save = {}) {
    int64_t v[2] = {hooks_.stop_requested() != 0 ? 1 : 0, did_work ? 1 : 0};
    comm_.all_reduce_sum(v, 2);
    progressed_ = progressed_ || v[1] > 0;
    if (v[0] == 0 || !progressed_) return;
    if (save) save();
    comm_.barrier();  // every rank's saved work is on disk before any rank reports the stop
    fail(ErrorKind::kStopped,
         "stopped at a safe point on request (signal on {} rank(s)); checkpoint in {}: rerun "
         "with --resume (on any number of ranks) to continue",
         v[0], work_);
  }

  std::string task_file(const char* tag, int64_t layer, size_t k) const {
    return work_file(fmt::format("{}-{:05d}-{}.bin", tag, layer, k));
  }

  // The seven linears of a layer one after the other, each split by rows over every rank
  // (quant::row_block): `task(k, group)` computes this rank's block of linear k (a QuantizedLinear
  // or a LinearErrorTable); the blocks travel serialised to rank 0 (or every rank), which reads
  // them back with `read` (checked) and merges them in row order. After each linear a safe point:
  // on a stop, rank 0 saves the linears this run finished as `TAG-LAYER-K.bin`, which a resumed
  // run (any rank count) reads instead of recomputing, refusing a damaged one. Returns the seven
  // merged results on rank 0 (on every rank when `everyone`), nothing elsewhere.
  template <typename T>
  std::vector<T> run_row_parallel(const char* tag, int64_t layer,
                                  const std::function<T(size_t k, quant::RowGroup& group)>& task,
                                  T (*read)(const uint8_t*, size_t, const std::string&),
                                  bool everyone) {
    const bool receiver = everyone || rank_ == 0;
    std::vector<T> out(receiver ? kKinds.size() : 0);
    std::vector<bool> computed(kKinds.size(), false);
    for (size_t k = 0; k < kKinds.size(); ++k) {
      const std::string path = task_file(tag, layer, k);
      int64_t saved = rank_ == 0 && fs::exists(path) ? 1 : 0;
      comm_.broadcast(std::span<int64_t>(&saved, 1), 0);
      if (saved != 0) {
        if (receiver) {
          const auto bytes = read_bytes_file(path);
          out[k] = read(bytes.data(), bytes.size(), path);
        }
        continue;
      }
      hooks_.fault_point("linear_task");
      CommRowGroup group(comm_, model::linear_shape(config_, kKinds[k]).out);
      const T mine = task(k, group);
      hooks_.fault_point("quantize_rows");
      // A rank without rows of this linear sends nothing.
      const auto blocks = gather_blocks(
          group.block().count > 0 ? serialize(mine) : std::vector<uint8_t>{}, everyone);
      hooks_.fault_point("gather_rows");
      if (receiver) {
        const std::string what = linear_name(layer, kKinds[k]);
        std::vector<T> parts;
        for (size_t r = 0; r < blocks.size(); ++r)
          parts.push_back(
              read(blocks[r].data(), blocks[r].size(), fmt::format("{} block {}", what, r)));
        out[k] = merge_row_blocks(std::move(parts), what);
      }
      computed[k] = true;
      safe_point(true, [&] {
        if (rank_ != 0) return;
        for (size_t u = 0; u <= k; ++u)
          if (computed[u]) write_bytes_file(task_file(tag, layer, u), serialize(out[u]));
      });
    }
    return out;
  }

  // Every rank's blob to rank 0 (or to every rank), in rank order; ranks that sent nothing are
  // left out.
  std::vector<std::vector<uint8_t>> gather_blocks(const std::vector<uint8_t>& mine, bool everyone) {
    const auto sizes = comm_.all_gather_value<int64_t>(static_cast<int64_t>(mine.size()));
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    std::vector<uint8_t> recv(static_cast<size_t>(everyone || rank_ == 0 ? total : 0));
    if (everyone)
      comm_.all_gatherv_bytes(mine.data(), static_cast<int64_t>(mine.size()), recv.data(), sizes);
    else
      comm_.gatherv_bytes(mine.data(), static_cast<int64_t>(mine.size()), recv.data(), sizes, 0);
    std::vector<std::vector<uint8_t>> blocks;
    if (recv.empty()) return blocks;
    int64_t offset = 0;
    for (int64_t s : sizes) {
      if (s > 0) blocks.emplace_back(recv.begin() + offset, recv.begin() + offset + s);
      offset += s;
    }
    return blocks;
  }

  // Quantizes every linear of the layer, row-parallel; returns all seven on rank 0 (or on every
  // rank).
  std::vector<QuantizedLinear> quantize_layer(
      int64_t layer, const std::function<Tensor(model::LinearKind, const quant::RowBlock&)>& weight,
      const std::array<Tensor, kGroups>& h, const std::vector<std::vector<uint8_t>>* bits,
      bool everyone) {
    return run_row_parallel<QuantizedLinear>(
        "linear", layer,
        [&](size_t k, quant::RowGroup& group) {
          const auto kind = kKinds[k];
          const Tensor& hk = h[static_cast<size_t>(model::linear_group(kind))];
          const std::vector<uint8_t>* row_bits = bits != nullptr ? &(*bits)[k] : nullptr;
          return quantize_linear(linear_name(layer, kind), weight(kind, group.block()), hk, o_,
                                 row_bits, group,
                                 comm_.backend() == comm::Backend::kNccl ? &comm_ : nullptr);
        },
        &deserialize_quantized_linear, everyone);
  }

  void write_layer(int64_t layer, const std::vector<QuantizedLinear>& q) {
    hooks_.fault_point("write_layer");
    io::PackedModel pm;
    pm.method = method_name(o_.method);
    pm.dense_dtype = io::StDtype::kF32;
    for (const auto& x : q) {
      if (x.kind == PackedKind::kLut)
        pm.lut_layers[x.name] = x.lut;
      else if (x.kind == PackedKind::kUniform)
        pm.uniform_layers[x.name] = x.uniform;
      else
        pm.column_lut_layers[x.name] = x.column;
    }
    const int64_t d = config_.hidden_size;
    for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
      const std::string name = fmt::format("model.layers.{}.{}.weight", layer, norm);
      pm.dense[name] = source_->load(name, {d});
    }
    if (config_.attention_bias) {
      for (auto k : {model::LinearKind::kQ, model::LinearKind::kK, model::LinearKind::kV}) {
        const std::string name = linear_name(layer, k) + ".bias";
        pm.dense[name] = source_->load(name, {model::linear_shape(config_, k).out});
      }
    }
    pm.metadata["layer"] = std::to_string(layer);
    io::write_packed_model(work_file(packed_layer_file(layer)), pm);
    if (o_.save_residual) write_residuals(layer, q);

    json linears = json::array();
    for (size_t k = 0; k < q.size(); ++k) {
      json x = linear_report(q[k]);
      if (!sensitivity_.empty()) {
        const auto& s = sensitivity_[static_cast<size_t>(layer) * kKinds.size() + k];
        x["sensitivity"] = {{"kl", s.kl}, {"error", s.error}, {"weight", s.weight()}};
      }
      linears.push_back(std::move(x));
    }
    json seconds = json::object();
    for (const auto& [k, v] : times_) seconds[k] = v;
    const json report = {{"layer", layer}, {"seconds", seconds}, {"linears", linears}};
    io::write_file_atomic(work_file(fmt::format("layer-report-{:05d}.json", layer)),
                          report.dump(1) + "\n");
  }

  // QDEC's residuals R = W - W^ of the layer's linears, from the model's weights (read again:
  // the quantization may not hold them), in a file of their own.
  void write_residuals(int64_t layer, const std::vector<QuantizedLinear>& q) {
    io::PackedModel pm;
    pm.method = method_name(o_.method);
    for (size_t k = 0; k < q.size(); ++k) {
      const auto s = model::linear_shape(config_, kKinds[k]);
      Tensor r = source_->load(q[k].name + ".weight", {s.out, s.in});
      const Tensor w_hat = dequantize(q[k]);
      float* d = r.data();
      for (int64_t i = 0; i < r.numel(); ++i) d[i] -= w_hat.data()[i];
      pm.residual_layers[q[k].name] = quant::quantize_residual(r);
    }
    pm.metadata["layer"] = std::to_string(layer);
    io::write_packed_model(work_file(packed_residual_file(layer)), pm);
  }

  // Layer `completed - 1` is done: its state, then (the state no longer needs them) the files it
  // replaces, written by this run's ranks or by the ranks of the checkpoint it resumed from.
  // Ends in a safe point: a stop here loses nothing.
  void checkpoint(const std::string& phase, int64_t completed, bool with_hidden) {
    hooks_.fault_point("checkpoint");
    if (with_hidden) write_tensor_file(hidden_file(completed), hidden_);
    comm_.barrier();
    if (rank_ == 0) {
      write_checkpoint_state(work_, {fingerprint_, world_, phase, completed});
      for (int r = 0; r < std::max(world_, checkpoint_world_); ++r)
        fs::remove(hidden_file(r, completed - 1));
      for (const char* tag : {"linear", "etable"})
        for (size_t k = 0; k < kKinds.size(); ++k) fs::remove(task_file(tag, completed - 1, k));
    }
    comm_.barrier();
    safe_point(true);
  }

  void progress(const char* phase, int64_t layer, double layer_seconds, int64_t remaining) {
    if (rank_ != 0 || o_.progress == ProgressFormat::kNone) return;
    done_layers_ += 1;
    done_seconds_ += layer_seconds;
    const double eta = done_seconds_ / static_cast<double>(done_layers_) * remaining;
    const double elapsed = seconds_since(start_);
    if (o_.progress == ProgressFormat::kJson) {
      const json j = {{"event", "layer"},
                      {"phase", phase},
                      {"layer", layer},
                      {"layers", config_.num_layers},
                      {"seconds", layer_seconds},
                      {"elapsed_s", elapsed},
                      {"eta_s", eta}};
      hooks_.progress_line(j.dump());
    } else {
      hooks_.progress_line(fmt::format("layer {}/{} {:<8} {:6.1f}s  elapsed {:7.1f}s  eta {:7.1f}s",
                                       layer + 1, config_.num_layers, phase, layer_seconds, elapsed,
                                       eta));
    }
  }

  // ---- the two modes ------------------------------------------------------------------------

  void layer_mode() {
    const int64_t n = config_.num_layers;
    if (resume_completed_ < n) load_hidden(resume_completed_);
    for (int64_t l = resume_completed_; l < n; ++l) {
      const auto t0 = Clock::now();
      times_.clear();
      hooks_.fault_point("layer_load");
      model::DecoderLayer layer = model::DecoderLayer::load(*source_, l);
      Tensor input;
      if (o_.propagation == Propagation::kQuantized) input = hidden_;
      const auto h = forward_and_hessians(layer);
      safe_point(false);  // nothing to save: a resumed run redoes this layer's forward
      const auto t1 = Clock::now();
      const auto weight = [&](model::LinearKind k, const quant::RowBlock& b) {
        return dynamic_cast<const model::DenseLinear&>(layer.linear(k))
            .weight()
            .rows(b.first, b.count);
      };
      const bool everyone = o_.propagation == Propagation::kQuantized;
      auto q = quantize_layer(l, weight, h, nullptr, everyone);
      times_["quantize"] = seconds_since(t1);
      if (everyone) {
        // The next layer sees this layer's quantized outputs.
        for (size_t k = 0; k < kKinds.size(); ++k) {
          const auto& dense = dynamic_cast<const model::DenseLinear&>(layer.linear(kKinds[k]));
          layer.replace_linear(
              kKinds[k], std::make_unique<model::DenseLinear>(dequantize(q[k]), dense.bias()));
        }
        hidden_ = std::move(input);
        backend().set_layer(layer);
        forward_samples();
      }
      if (rank_ == 0) write_layer(l, q);
      checkpoint("layers", l + 1, true);
      progress("quantize", l, seconds_since(t0), n - l - 1);
    }
    fs::remove(hidden_file(n));
  }

  void global_mode() {
    const int64_t n = config_.num_layers;
    if (resume_phase_ == 0) {
      if (resume_completed_ < n) load_hidden(resume_completed_);
      for (int64_t l = resume_completed_; l < n; ++l) {
        const auto t0 = Clock::now();
        times_.clear();
        hooks_.fault_point("layer_load");
        model::DecoderLayer layer = model::DecoderLayer::load(*source_, l);
        const auto h = forward_and_hessians(layer);
        safe_point(false);
        hooks_.fault_point("error_table");
        const auto tables = run_row_parallel<LinearErrorTable>(
            "etable", l,
            [&](size_t k, quant::RowGroup& group) {
              const auto& w =
                  dynamic_cast<const model::DenseLinear&>(layer.linear(kKinds[k])).weight();
              LinearErrorTable t;
              t.table = linear_error_table(w.rows(group.block().first, group.block().count),
                                           h[static_cast<size_t>(model::linear_group(kKinds[k]))],
                                           o_, &t.energy, group);
              return t;
            },
            &deserialize_error_table, false);
        if (rank_ == 0) {
          ByteWriter all;
          for (const auto& t : tables) all.put_vector(serialize(t));
          write_bytes_file(work_file(fmt::format("etable-{:05d}.bin", l)), all.bytes());
          for (int g = 0; g < kGroups; ++g)
            write_tensor_file(hessian_file(l, g), h[static_cast<size_t>(g)]);
        }
        checkpoint("stats", l + 1, true);
        const int64_t passes = o_.global_weights == GlobalWeights::kKl ? 3 : 2;
        progress("stats", l, seconds_since(t0), passes * n - l - 1);
      }
      fs::remove(hidden_file(n));
      if (o_.global_weights == GlobalWeights::kKl) measure_sensitivities();
    } else if (o_.global_weights == GlobalWeights::kKl && rank_ == 0) {
      read_sensitivities();  // for the report
    }

    const auto bits = allocate_global();

    const int64_t first = resume_phase_ == 1 ? resume_completed_ : 0;
    for (int64_t l = first; l < n; ++l) {
      const auto t0 = Clock::now();
      times_.clear();
      std::array<Tensor, kGroups> h;
      for (int g = 0; g < kGroups; ++g)
        h[static_cast<size_t>(g)] = read_tensor_file(hessian_file(l, g));
      const auto weight = [&](model::LinearKind k, const quant::RowBlock& b) {
        const auto s = model::linear_shape(config_, k);
        return source_->load(linear_name(l, k) + ".weight", {s.out, s.in}).rows(b.first, b.count);
      };
      auto q = quantize_layer(l, weight, h, &bits[static_cast<size_t>(l)], false);
      times_["quantize"] = seconds_since(t0);
      if (rank_ == 0) write_layer(l, q);
      checkpoint("quantize", l + 1, false);
      progress("quantize", l, seconds_since(t0), n - l - 1);
    }
  }

  // Every rank: each linear's KL per unit of error (sensitivity.h), on the first calibration
  // windows (each cut to at most --sensitivity-tokens); rank 0 keeps them in sensitivity.bin.
  void measure_sensitivities() {
    hooks_.fault_point("sensitivity");
    const auto t0 = Clock::now();
    const int64_t seq = std::min(calib_.seq_len, o_.sensitivity_tokens);
    const int64_t windows = std::min(calib_.samples(), (o_.sensitivity_tokens + seq - 1) / seq);
    std::vector<int32_t> tokens;
    for (int64_t w = 0; w < windows; ++w) {
      const int32_t* first = calib_.tokens.data() + w * calib_.seq_len;
      tokens.insert(tokens.end(), first, first + seq);
    }
    SensitivityInput in;
    in.tokens = tokens.data();
    in.windows = windows;
    in.seq = seq;
    in.bits = std::clamp(static_cast<int>(std::floor(o_.bits)), o_.b_min, o_.b_max);
    in.hessian = [&](int64_t layer, model::LinearGroup g) {
      return read_tensor_file(hessian_file(layer, static_cast<int>(g)));
    };
    auto t_layer = Clock::now();
    in.after_layer = [&](int64_t layer) {
      safe_point(false);
      progress("kl", layer, seconds_since(t_layer), 2 * config_.num_layers - layer - 1);
      t_layer = Clock::now();
    };
    sensitivity_ = measure_sensitivity(comm_, *source_, in, o_);
    if (rank_ == 0) {
      std::vector<double> flat;
      for (const auto& s : sensitivity_) flat.insert(flat.end(), {s.kl, s.error});
      ByteWriter w;
      w.put_vector(flat);
      write_bytes_file(work_file("sensitivity.bin"), w.bytes());
      hooks_.progress_line(fmt::format("sensitivity of {} linears on {} x {} tokens: {:.1f}s",
                                       sensitivity_.size(), windows, seq, seconds_since(t0)));
    }
  }

  void read_sensitivities() {
    const std::string path = work_file("sensitivity.bin");
    if (!fs::exists(path)) return;  // the allocation was made: only the report misses them
    const auto bytes = read_bytes_file(path);
    ByteReader r(bytes.data(), bytes.size(), path);
    const auto flat = r.get_vector<double>();
    if (flat.size() != static_cast<size_t>(config_.num_layers) * kKinds.size() * 2)
      fail(ErrorKind::kBadInput, "{}: {} values for {} layers", path, flat.size(),
           config_.num_layers);
    sensitivity_.clear();
    for (size_t i = 0; i < flat.size(); i += 2) sensitivity_.push_back({flat[i], flat[i + 1]});
  }

  // Rank 0 solves one budget over every layer from the stored error tables; every rank gets the
  // bits of every row: bits[layer][linear][row].
  std::vector<std::vector<std::vector<uint8_t>>> allocate_global() {
    hooks_.fault_point("allocation");
    const int64_t n = config_.num_layers;
    std::vector<uint8_t> blob;
    if (rank_ == 0) {
      const std::string bits_path = work_file("bits.bin");
      if (resume_phase_ == 1) {
        blob = read_bytes_file(bits_path);
      } else {
        std::vector<quant::ErrorTable> tables;
        std::vector<quant::LayerErrors> layers;
        tables.reserve(static_cast<size_t>(n) * kKinds.size());
        for (int64_t l = 0; l < n; ++l) {
          const std::string path = work_file(fmt::format("etable-{:05d}.bin", l));
          const auto bytes = read_bytes_file(path);
          ByteReader all(bytes.data(), bytes.size(), path);
          for (size_t k = 0; k < kKinds.size(); ++k) {
            const auto b = all.get_vector<uint8_t>();
            auto t = deserialize_error_table(b.data(), b.size(), path);
            if (t.table.rows != model::linear_shape(config_, kKinds[k]).out)
              fail(ErrorKind::kBadInput, "{}: error table of {} rows for {}", path, t.table.rows,
                   linear_name(l, kKinds[k]));
            tables.push_back(std::move(t.table));
            double scale = t.energy > 0 ? 1.0 / t.energy : 1.0;
            if (o_.global_weights == GlobalWeights::kKl)
              scale = std::max(sensitivity_[static_cast<size_t>(l) * kKinds.size() + k].weight(),
                               std::numeric_limits<double>::min());
            const auto shape = model::linear_shape(config_, kKinds[k]);
            layers.push_back(
                {nullptr, shape.in, true, scale, linear_reserved_bits(shape.out, shape.in, o_)});
          }
        }
        for (size_t i = 0; i < layers.size(); ++i) layers[i].table = &tables[i];
        quant::AllocationOptions options;
        options.entries = o_.lut_entries;
        const auto alloc = quant::allocate_bits_global(layers, o_.bits, options);
        ByteWriter w;
        for (const auto& a : alloc.layers) w.put_vector(a.bits);
        blob = std::move(w.bytes());
        write_bytes_file(bits_path, blob);
        write_checkpoint_state(work_, {fingerprint_, world_, "quantize", 0});
      }
    }
    int64_t size = static_cast<int64_t>(blob.size());
    comm_.broadcast(std::span<int64_t>(&size, 1), 0);
    blob.resize(static_cast<size_t>(size));
    comm_.broadcast_bytes(blob.data(), size, 0);
    std::vector<std::vector<std::vector<uint8_t>>> bits(static_cast<size_t>(n));
    ByteReader r(blob.data(), blob.size(), "bit allocation");
    for (int64_t l = 0; l < n; ++l)
      for (size_t k = 0; k < kKinds.size(); ++k)
        bits[static_cast<size_t>(l)].push_back(r.get_vector<uint8_t>());
    return bits;
  }

  // ---- output -------------------------------------------------------------------------------

  // Rank 0: the dense tensors, config, tokenizer, index, and report.json last: its presence says
  // the outputs are complete (a resumed run then only finishes).
  void write_outputs(const std::vector<int64_t>& rss) {
    hooks_.fault_point("write_output");
    const int64_t d = config_.hidden_size, v = config_.vocab_size;
    io::PackedModel dense;
    dense.method = method_name(o_.method);
    dense.dense_dtype = io::StDtype::kF16;
    dense.dense["model.embed_tokens.weight"] = source_->load("model.embed_tokens.weight", {v, d});
    dense.dense["model.norm.weight"] = source_->load("model.norm.weight", {d});
    if (!config_.tie_word_embeddings)
      dense.dense["lm_head.weight"] = source_->load("lm_head.weight", {v, d});
    io::write_packed_model(work_file(kPackedDenseFile), dense);
    io::write_hf_config(work_file("config.json"), config_);
    source_->write_tokenizer(work_);

    // Totals from the per-layer reports (they survive a resume).
    json layers = json::array();
    std::map<int, int64_t> hist;
    int64_t stored = 0, weights = 0;
    double error_sum = 0.0;
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      std::ifstream in(work_file(fmt::format("layer-report-{:05d}.json", l)));
      json lr = json::parse(in);
      for (const auto& x : lr["linears"]) {
        stored += x["stored_bits"].get<int64_t>();
        weights += x["rows"].get<int64_t>() * x["cols"].get<int64_t>();
        error_sum += x["relative_error"].get<double>();
        for (const auto& [b, c] : x["bits_histogram"].items())
          hist[std::stoi(b)] += c.get<int64_t>();
      }
      layers.push_back(std::move(lr));
    }
    const double average_bits = weights > 0 ? static_cast<double>(stored) / weights : 0.0;
    const std::string tokenizer_file =
        fs::exists(work_file("tokenizer.json")) ? "tokenizer.json" : "tokenizer.model";
    json files = json::array(), residual_files = json::array();
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      files.push_back(packed_layer_file(l));
      residual_files.push_back(packed_residual_file(l));
    }
    json index = {{"format", "skim-dist"},
                  {"format_version", 1},
                  {"method", method_name(o_.method)},
                  {"num_layers", config_.num_layers},
                  {"bits_per_weight", average_bits},
                  {"dense_file", kPackedDenseFile},
                  {"layer_files", files},
                  {"tokenizer", tokenizer_file}};
    if (o_.save_residual) index["residual_files"] = residual_files;
    io::write_file_atomic(work_file(kPackedIndexFile), index.dump(2) + "\n");

    json rss_mb = json::array();
    for (int64_t r : rss) rss_mb.push_back(static_cast<double>(r) / (1 << 20));
    const json report = {
        {"options",
         {{"model", o_.model},
          {"method", method_name(o_.method)},
          {"bits", o_.bits},
          {"calib", o_.calib},
          {"calib_samples", o_.calib_samples},
          {"calib_seq_len", o_.calib_seq_len},
          {"micro_batch", o_.micro_batch},
          {"seed", o_.seed},
          {"allocation", allocation_name(o_.allocation)},
          {"global_weights", o_.allocation == Allocation::kGlobal
                                 ? json(global_weights_name(o_.global_weights))
                                 : json(nullptr)},
          {"sensitivity_tokens", o_.sensitivity_tokens},
          {"propagation", propagation_name(o_.propagation)},
          {"b_min", o_.b_min},
          {"b_max", o_.b_max},
          {"train_scale", o_.train_scale},
          {"scale_steps", o_.scale_steps},
          {"refine_luts", o_.refine_luts},
          {"exact_kmeans", o_.exact_kmeans},
          {"outliers", o_.outliers_auto ? json("auto") : json(o_.outliers)},
          {"lut", o_.method == Method::kSkim || o_.method == Method::kKmeans
                      ? json(lut_entries_name(o_.lut_entries))
                      : json(nullptr)},
          {"grid_rows", o_.grid_rows},
          {"group_size", o_.group_size},
          {"act_order", o_.act_order},
          {"save_residual", o_.save_residual},
          {"device", device_name(o_.device)},
          {"damp", o_.damp}}},
        {"fingerprint", fingerprint_},
        {"ranks", world_},
        {"calibration_tokens", calib_tokens_},
        {"calibration", calib_report_},
        {"average_bits", average_bits},
        {"stored_bits", stored},
        {"quantized_weights", weights},
        {"mean_relative_error", error_sum / std::max<size_t>(1, layers.size() * kKinds.size())},
        {"bits_histogram", histogram_json(hist)},
        {"peak_rss_mb", rss_mb},
        {"seconds", seconds_since(start_)},
        {"resumed", resume_phase_ > 0 || resume_completed_ > 0},
        {"layers", layers}};
    io::write_file_atomic(work_file(kReportFile), report.dump(1) + "\n");
  }

  // The folder becomes final without a hole: a stop at any step leaves either the output or a
  // work folder that --resume completes (state.json, or else a complete report.json).
  QuantizeSummary finish() {
    const auto rss = comm_.all_gather_value<int64_t>(peak_rss_bytes());
    QuantizeSummary summary;
    summary.layers = config_.num_layers;
    if (rank_ == 0) {
      if (!finished_) write_outputs(rss);
      std::ifstream report_in(work_file(kReportFile));
      summary.average_bits = json::parse(report_in).at("average_bits").get<double>();

      // Checkpoint-only files go, state.json first (from here on report.json marks the folder),
      // and temporary files a killed process may have left (io::AtomicFile's ".NAME.tmp.*").
      hooks_.fault_point("finish_cleanup");
      fs::remove(work_file("state.json"));
      std::vector<fs::path> leftovers;
      for (const auto& e : fs::recursive_directory_iterator(work_)) {
        const std::string name = e.path().filename().string();
        const bool top = e.path().parent_path() == fs::path(work_);
        if (name.starts_with(".") ||
            (top && (name.ends_with(".bin") || name.starts_with("layer-report-"))))
          leftovers.push_back(e.path());
      }
      for (const auto& path : leftovers) fs::remove_all(path);
      hooks_.fault_point("finish_rename");
      if (fs::exists(o_.out)) fs::remove_all(o_.out);
      fs::rename(work_, o_.out);
      io::fsync_directory(fs::absolute(o_.out).parent_path().string());
    }
    summary.seconds = seconds_since(start_);
    comm_.barrier();
    comm_.broadcast(std::span<double>(&summary.average_bits, 1), 0);
    return summary;
  }

  comm::Communicator& comm_;
  const QuantizeOptions& o_;
  const PipelineHooks& hooks_;
  const int rank_;
  const int world_;
  Clock::time_point start_;
  std::unique_ptr<io::ModelSource> source_;
  ModelConfig config_;
  std::string work_;
  std::string fingerprint_;
  int64_t resume_phase_ = 0;
  int64_t resume_completed_ = 0;
  bool finished_ = false;     // resumed after the outputs were complete: only the finish is left
  int checkpoint_world_ = 1;  // ranks that wrote the checkpoint resumed from (else this run's)
  bool progressed_ = false;   // this run has computed something (agreed at safe points)
  CalibrationSet calib_;
  int64_t calib_tokens_ = 0;
  json calib_report_;
  comm::GroupBlock block_;
  Tensor hidden_;
  std::unique_ptr<DecoderBackend> backend_;  // the calibration forward's device, made on first use
  std::vector<LinearSensitivity> sensitivity_;  // global allocation with kl weights
  std::map<std::string, double> times_;
  int64_t done_layers_ = 0;
  double done_seconds_ = 0.0;
};

}  // namespace

QuantizeSummary run_quantize(comm::Communicator& comm, const QuantizeOptions& options,
                             const PipelineHooks& hooks) {
  return QuantizeRun(comm, options, hooks).run();
}

}  // namespace skim::pipeline
