#include "launch/device_option.h"

#include "comm/cuda_devices.h"
#include "launch/logger.h"
#include "launch/runtime.h"
#include "src/core/error.h"

namespace skim::launch {

DeviceChoice parse_device_choice(std::string_view text) {
  if (text == "auto") return DeviceChoice::kAuto;
  if (text == "cpu") return DeviceChoice::kCpu;
  if (text == "cuda") return DeviceChoice::kCuda;
  fail(ErrorKind::kUsage, "--device '{}': expected auto, cpu or cuda", text);
}

void add_device_option(CLI::App& cmd, std::string& text) {
  cmd.add_option("--device", text,
                 "auto (CUDA when every rank sees a GPU), cpu, "
                 "cuda (one GPU per rank, by local rank)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

pipeline::Device resolve_device(DeviceChoice choice, const DeviceFacts& facts) {
  if (choice == DeviceChoice::kCpu) return pipeline::Device::kCpu;
  std::string why_not;
  if (!facts.cuda_built) {
    why_not = "this skim-dist was built without CUDA (see skim-dist --version)";
  } else if (!facts.every_rank_has_gpu) {
    why_not =
        facts.gpus_here == 0
            ? fmt::format("{} sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)", rank_tag())
            : fmt::format("another rank of the job sees no GPU ({} sees {})", rank_tag(),
                          facts.gpus_here);
  }
  if (why_not.empty()) return pipeline::Device::kCuda;
  if (choice == DeviceChoice::kCuda) fail(ErrorKind::kUsage, "--device cuda: {}", why_not);
  return pipeline::Device::kCpu;
}

pipeline::Device resolve_device(std::string_view choice) {
  DeviceFacts facts;
  facts.cuda_built = pipeline::cuda_backend_built();
  facts.every_rank_has_gpu = runtime().every_rank_has_gpu();
  facts.gpus_here = comm::cuda_device_count();
  return resolve_device(parse_device_choice(choice), facts);
}

}  // namespace skim::launch
