#include "client/admin/remote.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/admin/command_util.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/proto_json.h"

namespace wxp::admin {
namespace {

// Config keys whose values are paths, resolved relative to the config file.
bool IsPathKey(const std::string& key) {
  return key == "tls_cert" || key == "tls_key" || key == "tls_ca";
}

}  // namespace

const std::vector<cli::FlagSpec>& ConnectionFlags() {
  static const auto* flags = new std::vector<cli::FlagSpec>{
      {"server", "wxp-server address host:port; replicas: a:7443,b:7443,c:7443"},
      {"tls-cert", "this client's certificate (PEM, from 'wxpctl certs issue --role admin')"},
      {"tls-key", "its private key (PEM, mode 0600)"},
      {"tls-ca", "the CA that signed the server's certificate"},
      {"tls-server-name", "verify the server certificate as this name (default: the host)"},
      {"plaintext", "no TLS: a local server started with --plaintext", true},
      {"identity", "plaintext only: the admin identity to state"},
      {"config", "config file of key = value lines (default: $WXPCTL_CONFIG)"},
      {"timeout", "seconds each call may take", false, "30"},
  };
  return *flags;
}

std::vector<std::string> HoistGlobalFlags(const std::vector<std::string>& args) {
  std::vector<std::string> hoisted, rest;
  size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-' &&
         args[i].find_first_not_of('-') != std::string::npos && args[i] != "-h" &&
         args[i] != "--help";
       ++i) {
    hoisted.push_back(args[i]);
    std::string name = args[i].substr(args[i].find_first_not_of('-'));
    if (name.find('=') != std::string::npos) continue;  // --flag=value: one word
    for (char& c : name) c = c == '_' ? '-' : c;
    bool takes_value = name == "output";
    for (const cli::FlagSpec& f : ConnectionFlags()) takes_value |= f.name == name && !f.is_bool;
    if (takes_value && i + 1 < args.size()) hoisted.push_back(args[++i]);
  }
  rest.assign(args.begin() + i, args.end());
  rest.insert(rest.end(), hoisted.begin(), hoisted.end());
  return rest;
}

absl::StatusOr<std::map<std::string, std::string>> ParseConfigText(const std::string& text,
                                                                   const std::string& base_dir) {
  std::map<std::string, std::string> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("config line ", line_no, ": expected 'key = value', got '", line, "'"));
    }
    std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    for (char& c : key) c = c == '-' ? '_' : c;
    bool known = key == "output";
    for (const cli::FlagSpec& f : ConnectionFlags()) {
      std::string flag = f.name;
      for (char& c : flag) c = c == '-' ? '_' : c;
      known = known || (flag == key && key != "config");
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("config line ", line_no, ": unknown key '", key, "'"));
    }
    if (IsPathKey(key) && !value.empty() && value[0] != '/' && !base_dir.empty()) {
      value = absl::StrCat(base_dir, "/", value);
    }
    out[key] = value;
  }
  return out;
}

absl::StatusOr<client::ConnectionOptions> ResolveConnectionOptions(
    const cli::ParsedArgs& args, const std::map<std::string, std::string>& file) {
  auto get = [&](const std::string& flag) -> std::string {
    if (args.Has(flag)) return args.Get(flag);
    std::string key = flag;
    for (char& c : key) c = c == '-' ? '_' : c;
    if (auto it = file.find(key); it != file.end()) return it->second;
    return args.Get(flag);  // the declared default
  };
  client::ConnectionOptions o;
  o.server_address = get("server");
  if (o.server_address.empty()) {
    return absl::InvalidArgumentError(
        "no server: give --server host:port (or 'server = ...' in the config file)");
  }
  const std::string plaintext = absl::AsciiStrToLower(get("plaintext"));
  o.plaintext = plaintext == "true" || plaintext == "1" || plaintext == "yes";
  o.tls.cert_file = get("tls-cert");
  o.tls.key_file = get("tls-key");
  o.tls.ca_file = get("tls-ca");
  o.tls_server_name = get("tls-server-name");
  o.identity = get("identity");
  o.role = Role::kAdmin;
  double seconds;
  if (!absl::SimpleAtod(get("timeout"), &seconds) || !(seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--timeout needs a positive number of seconds, got '", get("timeout"), "'"));
  }
  o.rpc_deadline = absl::Seconds(seconds);
  if (o.plaintext) {
    if (!o.tls.cert_file.empty() || !o.tls.key_file.empty()) {
      return absl::InvalidArgumentError("--plaintext does not go with --tls-cert / --tls-key");
    }
    if (o.identity.empty()) {
      return absl::InvalidArgumentError("--plaintext needs --identity NAME (who you are)");
    }
  } else {
    if (!o.identity.empty()) {
      return absl::InvalidArgumentError(
          "--identity is for --plaintext only: with TLS the certificate names you");
    }
    if (!o.tls.complete()) {
      return absl::InvalidArgumentError(
          "TLS needs --tls-cert, --tls-key and --tls-ca (or --plaintext --identity NAME "
          "against a local plaintext server)");
    }
  }
  return o;
}

std::optional<RemoteCommand> OpenRemote(const std::vector<std::string>& args,
                                        std::vector<cli::FlagSpec> own_flags,
                                        const RemoteUsage& usage, std::ostream& out,
                                        std::ostream& err, int* code) {
  if (usage.has_output) own_flags.push_back({"output", "table or json", false, "table"});
  own_flags.insert(own_flags.end(), ConnectionFlags().begin(), ConnectionFlags().end());
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, own_flags, usage.command, usage.usage, out, err, code);
  if (!p) return std::nullopt;
  const size_t n = p->positional().size();
  if (n < usage.min_positional || n > usage.max_positional) {
    *code = UsageError(err, usage.command,
                       n < usage.min_positional
                           ? "missing argument: " + usage.usage
                           : "unexpected argument '" + p->positional()[usage.max_positional] + "'");
    return std::nullopt;
  }
  std::string config_path = p->Get("config");
  if (config_path.empty()) {
    if (const char* env = std::getenv("WXPCTL_CONFIG")) config_path = env;
  }
  std::map<std::string, std::string> file;
  if (!config_path.empty()) {
    absl::StatusOr<std::string> text = ReadFile(config_path);
    if (!text.ok()) {
      *code = Fail(err, text.status());
      return std::nullopt;
    }
    const std::string base = std::filesystem::absolute(config_path).parent_path().string();
    absl::StatusOr<std::map<std::string, std::string>> parsed = ParseConfigText(*text, base);
    if (!parsed.ok()) {
      *code = Fail(err, absl::InvalidArgumentError(
                            absl::StrCat(config_path, ": ", parsed.status().message())));
      return std::nullopt;
    }
    file = *std::move(parsed);
  }
  RemoteCommand rc;
  if (usage.has_output) {
    std::string output =
        p->Has("output") || !file.count("output") ? p->Get("output") : file["output"];
    if (output != "table" && output != "json") {
      *code =
          UsageError(err, usage.command, "--output must be table or json, not '" + output + "'");
      return std::nullopt;
    }
    rc.json = output == "json";
  }
  absl::StatusOr<client::ConnectionOptions> options = ResolveConnectionOptions(*p, file);
  if (!options.ok()) {
    *code = UsageError(err, usage.command, std::string(options.status().message()));
    return std::nullopt;
  }
  absl::StatusOr<std::unique_ptr<client::Connection>> conn =
      client::Connection::Open(*options, absl::Now());
  if (!conn.ok()) {
    *code = Fail(err, conn.status());
    return std::nullopt;
  }
  rc.args = *std::move(p);
  rc.conn = *std::move(conn);
  return rc;
}

absl::Status RpcError(const grpc::Status& status, const std::string& what) {
  return RpcError(FromGrpc(status), what);
}

absl::Status RpcError(const absl::Status& s, const std::string& what) {
  std::string message =
      absl::StrCat(what, ": ", s.message(), " (", absl::StatusCodeToString(s.code()), ")");
  if (s.code() == absl::StatusCode::kUnavailable) {
    absl::StrAppend(&message,
                    "; is wxp-server listening there, and was this client's certificate "
                    "issued by the CA the server trusts?");
  }
  return absl::Status(s.code(), message);
}

std::string ProtoJson(const google::protobuf::Message& message) { return wxp::ProtoJson(message); }

}  // namespace wxp::admin
