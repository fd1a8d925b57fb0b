#pragma once
// A whole text file as bytes (UTF-8 is not checked here; the tokenizers take any bytes).
#include <string>

namespace skim::io {

// Throws kIo naming the path and `what` ("calibration text", ...) when it cannot be read.
std::string read_text_file(const std::string& path, const char* what);

}  // namespace skim::io
