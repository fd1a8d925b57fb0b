#include "io/text_file.h"

#include <fstream>
#include <sstream>

#include "src/core/error.h"

namespace skim::io {

std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open the {}", path, what);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail(ErrorKind::kIo, "{}: cannot read the {}", path, what);
  return buffer.str();
}

}  // namespace skim::io
