// JSON over plain HTTP from a loopback service a test started (the dashboard's API,
// Prometheus' HTTP API). Needs httplib compiled with Debian's Cflags: see
// //third_party:cpp_httplib and this library's `defines`.
#ifndef WXP_TESTS_TESTING_HTTP_JSON_H_
#define WXP_TESTS_TESTING_HTTP_JSON_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace wxp::proc {

// GET `path` (with the query `params`, URL-encoded) from 127.0.0.1:`port`, connecting within
// 2 s and reading within `read_timeout`. The body parsed as JSON when the answer is 200 and,
// unless `content_type` is empty, has exactly that Content-Type; nullopt otherwise (nothing
// listens, no answer in time, another status or type, a body that is not JSON).
std::optional<nlohmann::json> GetJson(int port, const std::string& path,
                                      absl::Duration read_timeout,
                                      const std::string& content_type = "",
                                      const httplib::Params& params = {});

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_HTTP_JSON_H_
