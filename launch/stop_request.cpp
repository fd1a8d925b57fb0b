#include "launch/stop_request.h"

#include <signal.h>

#include <csignal>

namespace skim::launch {
namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_stop_signal(int signal) {
  g_signal = signal;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and MPI's polling go on; safe points decide
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_requested() {
  return g_signal;
}

}  // namespace skim::launch
