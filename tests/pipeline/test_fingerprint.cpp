// The model identity in the run fingerprint: stable for the same files, changed by a byte changed
// in any sampled block (first and last MiB included), by a size change and by a newer
// modification time. The expected offsets are written out by hand, not taken from the code.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "src/pipeline/fingerprint.h"

namespace skim::pipeline {
namespace {
namespace fs = std::filesystem;

class ModelIdentity : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("skim-fingerprint-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    file_ = (dir_ / "model.safetensors").string();
    std::string bytes(kSize, '\0');
    std::mt19937 rng(5);
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::ofstream(file_, std::ios::binary).write(bytes.data(), kSize);
    mtime_ = fs::last_write_time(file_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Flips one byte at `offset` and restores the modification time, so only the content differs.
  void flip(int64_t offset) {
    std::fstream f(file_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(offset);
    f.write(&c, 1);
    f.close();
    fs::last_write_time(file_, mtime_);
  }

  static constexpr int64_t kSize = 20 << 20;  // 20 MiB
  fs::path dir_;
  std::string file_;
  fs::file_time_type mtime_;
};

TEST_F(ModelIdentity, OffsetsSpreadOverTheWholeFile) {
  const auto offsets = sampled_block_offsets(kSize);
  ASSERT_EQ(offsets.size(), 64u);
  EXPECT_EQ(offsets.front(), 0);
  // The last block ends within 63 bytes of the end (integer spacing), the spacing is even.
  const int64_t step = (kSize - (64 << 10)) / 63;
  for (size_t i = 0; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], step * static_cast<int64_t>(i));
  EXPECT_GE(offsets.back() + (64 << 10), kSize - 63);
  EXPECT_TRUE(sampled_block_offsets(1000).empty());
}

TEST_F(ModelIdentity, SeesChangesAnywhereSampled) {
  const uint64_t base = model_identity(dir_.string());
  EXPECT_EQ(model_identity(dir_.string()), base);  // stable
  // The middle of the file (block 31 starts at 31 * step), the first MiB, the last MiB.
  const int64_t step = (kSize - (64 << 10)) / 63;
  for (const int64_t offset : {31 * step + 1000, int64_t{12345}, kSize - 7}) {
    flip(offset);
    EXPECT_NE(model_identity(dir_.string()), base) << "byte " << offset;
    flip(offset);
    EXPECT_EQ(model_identity(dir_.string()), base) << "byte " << offset << " restored";
  }
}

TEST_F(ModelIdentity, SeesSizeAndModificationTime) {
  const uint64_t base = model_identity(dir_.string());
  fs::last_write_time(file_, mtime_ + std::chrono::seconds(5));
  EXPECT_NE(model_identity(dir_.string()), base);
  fs::last_write_time(file_, mtime_);
  EXPECT_EQ(model_identity(dir_.string()), base);
  fs::resize_file(file_, kSize - 1);
  EXPECT_NE(model_identity(dir_.string()), base);
}

// Each option that changes the output changes the fingerprint (a resumed run must refuse a
// checkpoint made with another value); ranks, threads and progress do not enter it.
TEST_F(ModelIdentity, OutputChangingOptionsChangeTheRunFingerprint) {
  QuantizeOptions base;
  base.model = file_;
  const std::string ref = run_fingerprint(base, "calibration text");
  std::vector<QuantizeOptions> changed(7, base);
  changed[0].outliers = 0.01;
  changed[6].outliers_auto = true;
  changed[1].global_weights = GlobalWeights::kEnergy;
  changed[2].sensitivity_tokens = 256;
  changed[3].allocation = Allocation::kGlobal;
  changed[4].lut_entries = quant::LutEntries::kF16;
  changed[5].seed = 1;
  for (size_t i = 0; i < changed.size(); ++i)
    EXPECT_NE(run_fingerprint(changed[i], "calibration text"), ref) << "option " << i;
  EXPECT_NE(run_fingerprint(base, "other text"), ref);
  QuantizeOptions same = base;
  same.progress = ProgressFormat::kNone;
  same.micro_batch = 7;
  EXPECT_EQ(run_fingerprint(same, "calibration text"), ref);
}

}  // namespace
}  // namespace skim::pipeline
