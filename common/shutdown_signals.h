// Signal dispositions of the daemons (wxp-server, wxp-agent): the signals that ask them to
// shut down gracefully, blocked so a dedicated thread can take them with sigwait, and the one
// that must never stop them (SIGPIPE).
#ifndef WXP_COMMON_SHUTDOWN_SIGNALS_H_
#define WXP_COMMON_SHUTDOWN_SIGNALS_H_

#include <signal.h>

namespace wxp {

// Blocks SIGTERM and SIGINT in the calling thread (call before starting any thread, so every
// thread inherits the mask) and returns the set to sigwait on. A SIGINT ignored at start (a
// background job of a script) stays ignored and is left out, as the shell meant: a Ctrl-C
// aimed at the script's foreground command must not stop this process.
sigset_t BlockShutdownSignals();

// Ignores SIGPIPE process-wide. OpenSSL writes to its sockets with write(2), not send(2) with
// MSG_NOSIGNAL, so an HTTPS peer that hangs up first (a client the handshake refused, a
// browser closing a tab mid-response) would otherwise kill the whole daemon; ignored, the
// write fails with EPIPE and only that connection ends.
void IgnoreBrokenPipes();

}  // namespace wxp

#endif  // WXP_COMMON_SHUTDOWN_SIGNALS_H_
