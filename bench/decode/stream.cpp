// Memory bandwidth the way STREAM measures it: the triad a[i] = b[i] + s * c[i] over arrays far
// larger than the caches, on every OpenMP thread, best of ten. Prints one JSON object: bytes
// moved per second (two reads and one write per element), so decode speeds can be put beside
// what the machine can read.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1L << 25;  // 3 x 128 MiB of float
  std::vector<float> a(static_cast<size_t>(n)), b(a.size()), c(a.size());
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; ++i) {
    a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
  double best = 1e30;
  for (int rep = 0; rep < 10; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double bytes = 3.0 * static_cast<double>(n) * sizeof(float);
  std::printf("{\"triad_gb_per_s\": %.3f, \"array_mib\": %.1f, \"threads\": %d, \"check\": %.1f}\n",
              bytes / best / 1e9, static_cast<double>(n) * sizeof(float) / (1 << 20),
              omp_get_max_threads(), static_cast<double>(a[static_cast<size_t>(n / 2)]));
  return 0;
}
