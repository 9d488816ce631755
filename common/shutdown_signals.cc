#include "common/shutdown_signals.h"

#include <pthread.h>

namespace wxp {

sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  struct sigaction int_action {};
  if (sigaction(SIGINT, nullptr, &int_action) != 0 || int_action.sa_handler != SIG_IGN) {
    sigaddset(&signals, SIGINT);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void IgnoreBrokenPipes() { signal(SIGPIPE, SIG_IGN); }

}  // namespace wxp
