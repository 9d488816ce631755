// The signals that ask a daemon (wxp-server, wxp-agent) to shut down gracefully, blocked so a
// dedicated thread can take them with sigwait.
#ifndef WXP_COMMON_SHUTDOWN_SIGNALS_H_
#define WXP_COMMON_SHUTDOWN_SIGNALS_H_

#include <signal.h>

namespace wxp {

// Blocks SIGTERM and SIGINT in the calling thread (call before starting any thread, so every
// thread inherits the mask) and returns the set to sigwait on. A SIGINT ignored at start (a
// background job of a script) stays ignored and is left out, as the shell meant: a Ctrl-C
// aimed at the script's foreground command must not stop this process.
sigset_t BlockShutdownSignals();

}  // namespace wxp

#endif  // WXP_COMMON_SHUTDOWN_SIGNALS_H_
