#pragma once
// Exceptions out of OpenMP parallel regions. An exception that leaves a region's block calls
// std::terminate: the one catch site (launch::run_guarded) never runs and the other ranks are not
// aborted. Each iteration's body runs through run(); the first exception is kept and rethrown by
// rethrow() after the region, on the thread that started it.
//   ParallelErrors errors;
//   #pragma omp parallel for
//   for (...) errors.run([&] { ... });
//   errors.rethrow();
#include <exception>
#include <mutex>

namespace skim {

class ParallelErrors {
 public:
  template <typename Body>
  void run(Body&& body) noexcept {
    try {
      body();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }

  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace skim
