#pragma once
// Calibration data as people have it: one plain-text file (one document), a folder of text files
// (one document each, in name order), or JSON Lines (a file ending in .jsonl: one document per
// line, from its "text" field).
#include <string>
#include <vector>

namespace skim::io {

struct CalibrationDocument {
  std::string name;  // the file, or "FILE:LINE" for a JSON Lines document
  std::string text;
};

struct CalibrationDocuments {
  std::string format;  // "text", "folder" or "jsonl"
  std::vector<CalibrationDocument> documents;
};

// Throws kBadInput naming the file (and line) for a folder without text files, a line that is not
// a JSON object with a string "text", or no document at all; kIo when a file cannot be read.
// A folder's files are its regular files not starting with '.', not descended into.
CalibrationDocuments read_calibration_documents(const std::string& path);

}  // namespace skim::io
