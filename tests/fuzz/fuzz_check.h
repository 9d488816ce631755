// The property checks of the fuzz targets. A failed check is a finding: it prints what
// broke and aborts, which libFuzzer reports as a crash (and saves the input) and which fails
// the *_replay test. Plain assert() would vanish in opt builds.
#ifndef WXP_TESTS_FUZZ_FUZZ_CHECK_H_
#define WXP_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

namespace wxp::fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* cond,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n  %s\n", file, line, cond, detail.c_str());
  std::abort();
}

}  // namespace wxp::fuzz

// `detail` is evaluated only on failure, so it may build an expensive message.
#define WXP_FUZZ_CHECK(cond, detail)                                            \
  do {                                                                          \
    if (!(cond)) ::wxp::fuzz::CheckFailed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)

#endif  // WXP_TESTS_FUZZ_FUZZ_CHECK_H_
