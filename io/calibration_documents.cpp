#include "io/calibration_documents.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/text_file.h"
#include "src/core/error.h"

namespace skim::io {
namespace fs = std::filesystem;

namespace {

std::vector<CalibrationDocument> json_lines(const std::string& path) {
  const std::string all = read_text_file(path, "calibration text");
  std::vector<CalibrationDocument> docs;
  std::istringstream in(all);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      fail(ErrorKind::kBadInput, "{}:{}: not a JSON object", path, number);
    const auto it = j.find("text");
    if (it == j.end() || !it->is_string())
      fail(ErrorKind::kBadInput, "{}:{}: no string field \"text\"", path, number);
    docs.push_back({fmt::format("{}:{}", path, number), it->get<std::string>()});
  }
  return docs;
}

}  // namespace

CalibrationDocuments read_calibration_documents(const std::string& path) {
  CalibrationDocuments out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    out.format = "folder";
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && !e.path().filename().string().starts_with("."))
        files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out.documents.push_back({f, read_text_file(f, "calibration text")});
  } else if (path.ends_with(".jsonl")) {
    out.format = "jsonl";
    out.documents = json_lines(path);
  } else {
    out.format = "text";
    out.documents.push_back({path, read_text_file(path, "calibration text")});
  }
  if (out.documents.empty()) fail(ErrorKind::kBadInput, "{}: no calibration document in it", path);
  return out;
}

}  // namespace skim::io
