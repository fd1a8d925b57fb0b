// --device: parsing and the resolution of auto / cpu / cuda against what the build and the job
// have (launch/device_option.h). Each refusal is a usage error saying why.
#include <gtest/gtest.h>

#include <string>

#include "launch/device_option.h"
#include "src/core/error.h"

namespace skim::launch {
namespace {

using pipeline::Device;

DeviceFacts facts(bool built, bool all_gpus, int here) {
  DeviceFacts f;
  f.cuda_built = built;
  f.every_rank_has_gpu = all_gpus;
  f.gpus_here = here;
  return f;
}

// The message of the kUsage error resolve_device throws; fails the test if it does not throw.
std::string refusal(DeviceChoice choice, const DeviceFacts& f) {
  try {
    resolve_device(choice, f);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(DeviceOption, Parse) {
  EXPECT_EQ(parse_device_choice("auto"), DeviceChoice::kAuto);
  EXPECT_EQ(parse_device_choice("cpu"), DeviceChoice::kCpu);
  EXPECT_EQ(parse_device_choice("cuda"), DeviceChoice::kCuda);
  EXPECT_THROW(parse_device_choice("gpu"), Error);
}

TEST(DeviceOption, CpuIsAlwaysTheCpu) {
  EXPECT_EQ(resolve_device(DeviceChoice::kCpu, facts(true, true, 8)), Device::kCpu);
  EXPECT_EQ(resolve_device(DeviceChoice::kCpu, facts(false, false, 0)), Device::kCpu);
}

TEST(DeviceOption, CudaWhenEverythingServesIt) {
  EXPECT_EQ(resolve_device(DeviceChoice::kCuda, facts(true, true, 1)), Device::kCuda);
  EXPECT_EQ(resolve_device(DeviceChoice::kAuto, facts(true, true, 4)), Device::kCuda);
}

TEST(DeviceOption, CudaRefusedWithTheReason) {
  EXPECT_NE(refusal(DeviceChoice::kCuda, facts(false, true, 1)).find("built without CUDA"),
            std::string::npos);
  EXPECT_NE(refusal(DeviceChoice::kCuda, facts(true, false, 0)).find("sees no GPU"),
            std::string::npos);
  EXPECT_NE(refusal(DeviceChoice::kCuda, facts(true, false, 2)).find("another rank"),
            std::string::npos);
}

TEST(DeviceOption, AutoFallsBackToTheCpu) {
  EXPECT_EQ(resolve_device(DeviceChoice::kAuto, facts(false, true, 1)), Device::kCpu);
  EXPECT_EQ(resolve_device(DeviceChoice::kAuto, facts(true, false, 1)), Device::kCpu);
}

}  // namespace
}  // namespace skim::launch
