#include "common/leader_redirect.h"

#include "absl/strings/str_cat.h"

namespace wxp {

const std::string& LeaderRedirectTypeUrl() {
  static const auto* url = new std::string(
      absl::StrCat("type.googleapis.com/", wxp::v1::LeaderRedirect::descriptor()->full_name()));
  return *url;
}

absl::Status LeaderRedirectError(const std::string& swarm, const std::string& leader_address,
                                 const std::string& leader_replica_id) {
  absl::Status s = absl::UnavailableError(absl::StrCat("swarm '", swarm, "' is led by replica '",
                                                       leader_replica_id, "' at ", leader_address,
                                                       "; call it there"));
  wxp::v1::LeaderRedirect redirect;
  redirect.set_swarm(swarm);
  redirect.set_leader_address(leader_address);
  redirect.set_leader_replica_id(leader_replica_id);
  s.SetPayload(LeaderRedirectTypeUrl(), absl::Cord(redirect.SerializeAsString()));
  return s;
}

std::optional<wxp::v1::LeaderRedirect> LeaderRedirectOf(const absl::Status& status) {
  auto payload = status.GetPayload(LeaderRedirectTypeUrl());  // absl::optional
  if (!payload) return std::nullopt;
  wxp::v1::LeaderRedirect redirect;
  if (!redirect.ParseFromString(std::string(*payload))) return std::nullopt;
  return redirect;
}

}  // namespace wxp
