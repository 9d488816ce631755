// LeakSanitizer suppressions compiled into --config=asan executables. A suppressions file
// would need an absolute path in LSAN_OPTIONS, which neither .bazelrc nor the child
// processes the integration tests start (wxp-server, wxp-agent, wxpctl) can agree on.
//
// Every entry is for code outside this repository (Debian's uninstrumented shared
// libraries), with the reason it is not ours. Nothing in common/, server/, client/,
// tests/ or bench/ may be suppressed here: fix it instead.

extern "C" {

__attribute__((visibility("default"), used)) const char* __lsan_default_suppressions() {
  return
      // c-ares 1.18.1 (bookworm's libc-ares2) leaks its strdup of the name on every
      // successful ares_gethostbyname of "localhost" (10 bytes), reached through gRPC's
      // c-ares resolver when a channel targets localhost:PORT
      // (https://github.com/c-ares/c-ares/issues/439). The pattern is the library, not
      // the function: libcares has no frame pointers, so the fast unwinder's stack ends in
      // it. This repository calls c-ares only through gRPC.
      "leak:libcares.so\n";
}

}  // extern "C"
