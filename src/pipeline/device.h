#pragma once
// The devices a command can compute on (--device, launch/device_option.h).

namespace skim::pipeline {

enum class Device { kCpu, kCuda };
const char* device_name(Device device);  // "cpu" | "cuda"

// True when this build has the CUDA paths (CUDA found at configure time); defined with them in
// cuda_backends.cpp.
bool cuda_backend_built();

}  // namespace skim::pipeline
