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
  try {
    const auto j = nlohmann::json::parse(in);
    CheckpointState s;
    s.fingerprint = j.at("fingerprint").get<std::string>();
    s.world = j.at("world").get<int>();
    s.phase = j.at("phase").get<std::string>();
    s.completed = j.at("completed").get<int64_t>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadInput, "{}: corrupt checkpoint state: {}", path.string(), e.what());
  }
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
