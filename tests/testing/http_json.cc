#include "tests/testing/http_json.h"

namespace wxp::proc {

std::optional<nlohmann::json> GetJson(int port, const std::string& path,
                                      absl::Duration read_timeout, const std::string& content_type,
                                      const httplib::Params& params) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(absl::ToInt64Seconds(read_timeout));
  // Without parameters the path goes out as given, with no trailing '?'.
  httplib::Result res =
      params.empty() ? client.Get(path) : client.Get(path, params, httplib::Headers{});
  if (!res || res->status != 200) return std::nullopt;
  if (!content_type.empty() && res->get_header_value("Content-Type") != content_type) {
    return std::nullopt;
  }
  nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
  if (body.is_discarded()) return std::nullopt;
  return body;
}

}  // namespace wxp::proc
