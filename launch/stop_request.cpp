#include "launch/stop_request.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

namespace skim::launch {
namespace {

volatile std::sig_atomic_t g_signal = 0;
unsigned g_term_grace_s = kDefaultTermGraceSeconds;

// Async-signal-safe only: record, arm the alarm, or _exit.
void on_stop_signal(int signal) {
  if (signal == SIGTERM) {
    if (g_signal == SIGTERM) _exit(128 + SIGTERM);  // a second SIGTERM: now
    alarm(g_term_grace_s);
  }
  g_signal = signal;
}

void on_term_grace_over(int) {
  _exit(128 + SIGTERM);
}

void install(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking reads and MPI's polling go on; safe points decide
  sigaction(signal, &action, nullptr);
}

}  // namespace

void install_stop_handlers() {
  if (const char* text = std::getenv("SKIM_TERM_GRACE")) {
    const int s = std::atoi(text);
    if (s > 0) g_term_grace_s = static_cast<unsigned>(s);
  }
  install(SIGTERM, on_stop_signal);
  install(SIGUSR1, on_stop_signal);
  install(SIGALRM, on_term_grace_over);
}

int stop_requested() {
  return g_signal;
}

}  // namespace skim::launch
