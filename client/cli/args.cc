#include "client/cli/args.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace wxp::cli {

std::string ParsedArgs::Get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = defaults_.find(name); it != defaults_.end()) return it->second;
  return "";
}

bool ParsedArgs::GetBool(const std::string& name) const {
  const std::string v = Get(name);
  return v == "true" || v == "1" || v == "yes";
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  std::vector<std::string> out;
  auto it = all_values_.find(name);
  if (it == all_values_.end()) return out;
  for (const std::string& v : it->second) {
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      out.emplace_back(part);
    }
  }
  return out;
}

absl::StatusOr<double> ParsedArgs::GetDouble(const std::string& name) const {
  double d;
  const std::string v = Get(name);
  if (!absl::SimpleAtod(v, &d) || !std::isfinite(d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs a finite number, got '", v, "'"));
  }
  return d;
}

absl::StatusOr<int64_t> ParsedArgs::GetInt(const std::string& name) const {
  int64_t i;
  const std::string v = Get(name);
  if (!absl::SimpleAtoi(v, &i)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs a whole number, got '", v, "'"));
  }
  return i;
}

absl::StatusOr<std::vector<double>> ParsedArgs::GetDoubleList(const std::string& name) const {
  std::vector<double> out;
  if (!Has(name)) return out;
  for (absl::string_view part : absl::StrSplit(Get(name), ',')) {
    double d;
    if (!absl::SimpleAtod(part, &d) || !std::isfinite(d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " needs comma-separated finite numbers; '", part, "' is not one"));
    }
    out.push_back(d);
  }
  return out;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& flags) {
  ParsedArgs parsed;
  std::map<std::string, const FlagSpec*> by_name;
  for (const FlagSpec& f : flags) {
    by_name[f.name] = &f;
    if (!f.default_value.empty()) parsed.defaults_[f.name] = f.default_value;
  }
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      parsed.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") return absl::NotFoundError("");
    absl::string_view body = a;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name(body), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    // Accept --output_dir for --output-dir: both spellings are common.
    for (char& c : name) c = c == '_' ? '-' : c;
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (it->second->is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    parsed.values_[name] = value;
    parsed.all_values_[name].push_back(value);
  }
  return parsed;
}

std::string FlagsHelp(const std::vector<FlagSpec>& flags) {
  std::string out;
  for (const FlagSpec& f : flags) {
    std::string left = absl::StrCat("  --", f.name);
    if (!f.is_bool)
      absl::StrAppend(&left, "=", f.default_value.empty() ? "VALUE" : f.default_value);
    if (left.size() < 26) left.resize(26, ' ');
    absl::StrAppend(&out, left, " ", f.help, "\n");
  }
  return out;
}

}  // namespace wxp::cli
