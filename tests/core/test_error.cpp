#include "src/core/error.h"

#include <gtest/gtest.h>

#include <string>

namespace skim {
namespace {

TEST(ErrorMessage, ControlBytesAreEscapedSoTheMessageIsOneLine) {
  const Error e(ErrorKind::kBadInput, std::string("f.gguf: key 'a\nb\x1b[2J\t\x7f\x01' is bad"));
  EXPECT_STREQ(e.what(), "f.gguf: key 'a\\x0ab\\x1b[2J\\x09\\x7f\\x01' is bad");
}

TEST(ErrorMessage, PrintableAndUtf8TextIsKept) {
  const std::string text = "model.safetensors: tensor caf\xc3\xa9.weight has shape [2, 3]";
  EXPECT_EQ(Error(ErrorKind::kBadInput, text).what(), text);
}

TEST(ErrorMessage, AnOverlongMessageIsCut) {
  const Error e(ErrorKind::kBadInput, std::string(kMaxMessageBytes + 500, 'k'));
  EXPECT_EQ(std::string(e.what()), std::string(kMaxMessageBytes, 'k') + "...");
}

TEST(ErrorMessage, FailFormatsThenEscapes) {
  try {
    fail(ErrorKind::kIo, "{}: {}", "path", "two\nlines");
    FAIL() << "fail() returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_STREQ(e.what(), "path: two\\x0alines");
  }
}

}  // namespace
}  // namespace skim
