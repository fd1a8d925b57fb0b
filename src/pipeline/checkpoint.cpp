#include "src/pipeline/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "src/core/error.h"
#include "src/pipeline/byte_stream.h"

namespace skim::pipeline {
namespace fs = std::filesystem;

std::optional<CheckpointState> read_checkpoint_state(const std::string& work_dir) {
  const fs::path path = fs::path(work_dir) / "state.json";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  // Every field checked for its type and range before use: get<int>() of a float such as 1e75
  // would be undefined behaviour (found by fuzz_checkpoint).
  const auto bad = [&](const char* what) {
    fail(ErrorKind::kBadInput, "{}: corrupt checkpoint state: {}", path.string(), what);
  };
  if (j.is_discarded() || !j.is_object()) bad("not a JSON object");
  for (const char* key : {"fingerprint", "phase"})
    if (!j.contains(key) || !j[key].is_string()) bad("no string fingerprint and phase");
  for (const char* key : {"world", "completed"})
    if (!j.contains(key) || !j[key].is_number_integer()) bad("no integer world and completed");
  CheckpointState s;
  s.fingerprint = j["fingerprint"].get<std::string>();
  s.phase = j["phase"].get<std::string>();
  const auto world = j["world"].get<int64_t>();
  s.completed = j["completed"].get<int64_t>();
  if (world < 1 || world > (int64_t{1} << 24) || s.completed < 0)
    bad("world or completed out of range");
  s.world = static_cast<int>(world);
  return s;
}

void write_checkpoint_state(const std::string& work_dir, const CheckpointState& s) {
  const nlohmann::json j = {{"fingerprint", s.fingerprint},
                            {"world", s.world},
                            {"phase", s.phase},
                            {"completed", s.completed}};
  io::write_file_atomic((fs::path(work_dir) / "state.json").string(), j.dump(2) + "\n");
}

void write_tensor_file(const std::string& path, const Tensor& t) {
  ByteWriter w;
  w.put<uint64_t>(0x31534e4554534b53ull);  // "SKSTENS1"
  w.put_vector(t.shape());
  w.put<int64_t>(t.numel());
  auto& bytes = w.bytes();
  const auto* p = reinterpret_cast<const uint8_t*>(t.data());
  bytes.insert(bytes.end(), p, p + t.numel() * sizeof(float));
  write_bytes_file(path, bytes);
}

Tensor read_tensor_file(const std::string& path) {
  const auto bytes = read_bytes_file(path);
  ByteReader r(bytes.data(), bytes.size(), path);
  if (r.get<uint64_t>() != 0x31534e4554534b53ull)
    fail(ErrorKind::kBadInput, "{}: not a skim-dist tensor file", path);
  auto shape = r.get_vector<int64_t>();
  auto values = r.get_vector<float>();
  if (!r.done()) fail(ErrorKind::kBadInput, "{}: trailing bytes", path);
  const auto numel = checked_numel(shape);
  if (!numel || *numel != static_cast<int64_t>(values.size()))
    fail(ErrorKind::kBadInput, "{}: shape does not match its values", path);
  return Tensor(std::move(shape), std::move(values));
}

void write_bytes_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  io::AtomicFile f(path);
  f.write(std::span<const uint8_t>(bytes));
  f.commit();
}

std::vector<uint8_t> read_bytes_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot read", path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace skim::pipeline
