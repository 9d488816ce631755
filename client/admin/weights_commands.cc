// `wxpctl weights set|show`: dynamic utility (SPEC 4.2).
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"

namespace wxp::admin {
namespace {

int WeightsShow(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {}, {"weights show", "NAME [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  v1::GetUtilityWeightsRequest req;
  req.set_swarm(rc->args.positional()[0]);
  v1::UtilityWeights resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    return rc->conn->admin().GetUtilityWeights(rc->conn->NewContext().get(), req, &resp);
  });
  return Reply(*rc, s, "weights show", resp, RenderWeights, out, err);
}

int WeightsSet(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  constexpr size_t kManyComponents = 1 << 10;
  std::optional<RemoteCommand> rc = OpenRemote(
      args,
      {{"after-iteration",
        "schedule the change for when this iteration has closed, instead of now (the server "
        "stores it; `weights show` lists it)"}},
      {"weights set", "NAME COMPONENT=WEIGHT... [--after-iteration N] [--output table|json]", 2,
       kManyComponents, true},
      out, err, &code);
  if (!rc) return code;
  v1::SetUtilityWeightsRequest req;
  req.set_swarm(rc->args.positional()[0]);
  if (rc->args.Has("after-iteration")) {
    absl::StatusOr<int64_t> after = rc->args.GetInt("after-iteration");
    if (!after.ok() || *after < 1 || *after > std::numeric_limits<int32_t>::max()) {
      return UsageError(err, "weights set",
                        absl::StrCat("--after-iteration takes an iteration >= 1, got '",
                                     rc->args.Get("after-iteration"), "'"));
    }
    req.set_after_iteration(static_cast<int32_t>(*after));
  }
  for (size_t i = 1; i < rc->args.positional().size(); ++i) {
    const std::string& word = rc->args.positional()[i];
    const size_t eq = word.find('=');
    double w;
    if (eq == std::string::npos || eq == 0 || !absl::SimpleAtod(word.substr(eq + 1), &w) ||
        !std::isfinite(w)) {
      return UsageError(
          err, "weights set",
          absl::StrCat("expected COMPONENT=WEIGHT with a finite number, got '", word, "'"));
    }
    (*req.mutable_weights())[word.substr(0, eq)] = w;
  }
  v1::UtilityWeights resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    return rc->conn->admin().SetUtilityWeights(rc->conn->NewContext().get(), req, &resp);
  });
  return Reply(*rc, s, "weights set", resp, RenderWeights, out, err);
}

}  // namespace

int Weights(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return DispatchSubcommand("weights", args, {{"set", WeightsSet}, {"show", WeightsShow}}, out,
                            err);
}

}  // namespace wxp::admin
