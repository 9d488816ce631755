#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"

namespace wxp::metrics {
namespace internal {

void Fail(const std::string& message) {
  std::cerr << "metrics: " << message << std::endl;
  std::abort();
}

}  // namespace internal
namespace {

bool ValidName(const std::string& name, bool colons) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colons && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}`, with an extra last pair if `extra_name` is set; "" when there are none.
std::string LabelText(const std::vector<std::string>& names, const LabelValues& values,
                      const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", extra_name, "=\"", EscapeLabelValue(extra_value),
                    "\"");
  }
  if (!out.empty()) out += "}";
  return out;
}

void AtomicAdd(std::atomic<double>& target, double amount) {
  double old = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(old, old + amount, std::memory_order_relaxed)) {
  }
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  // %g writes 10 as "1e+01": whole numbers read better (and as other exporters write
  // them) in full, up to where doubles stop being exact integers.
  if (std::strchr(buf, 'e') != nullptr && value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", value);
  }
  return buf;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Counter::Increment(double amount) {
  if (amount > 0) AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      internal::Fail("histogram bounds must be finite and strictly increasing");
    }
  }
}

void Histogram::Observe(double value) {
  // The first bucket whose bound is >= value ("le"); past the last bound: +Inf.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++counts_[i];
  sum_ += value;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (uint64_t c : counts_) {
    total += c;
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_;
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

void Registry::Register(const std::string& name, const std::vector<std::string>& label_names,
                        bool histogram) {
  if (!ValidName(name, /*colons=*/true)) internal::Fail("invalid metric name '" + name + "'");
  for (const Entry& e : entries_) {
    if (e.name == name) internal::Fail("metric '" + name + "' registered twice");
  }
  std::set<std::string> seen;
  for (const std::string& l : label_names) {
    if (!ValidName(l, /*colons=*/false) || l.rfind("__", 0) == 0 || (histogram && l == "le") ||
        !seen.insert(l).second) {
      internal::Fail(name + ": invalid or repeated label name '" + l + "'");
    }
  }
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names, false);
  counters_.emplace_back(
      new Family<Counter>(name, label_names, [] { return std::make_unique<Counter>(); }));
  entries_.push_back({name, help, Type::kCounter, label_names, counters_.back().get()});
  return *counters_.back();
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names, false);
  gauges_.emplace_back(
      new Family<Gauge>(name, label_names, [] { return std::make_unique<Gauge>(); }));
  entries_.push_back({name, help, Type::kGauge, label_names, gauges_.back().get()});
  return *gauges_.back();
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Register(name, label_names, true);
  Histogram check(bounds);  // fails now, not at the first observation
  histograms_.emplace_back(new Family<Histogram>(
      name, label_names, [bounds] { return std::make_unique<Histogram>(bounds); }));
  entries_.push_back({name, help, Type::kHistogram, label_names, histograms_.back().get()});
  return *histograms_.back();
}

void Registry::AddCollector(std::function<void()> collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() {
  absl::MutexLock render_lock(&render_mu_);
  std::vector<std::function<void()>> collectors;
  std::vector<Entry> entries;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
    entries = entries_;
  }
  for (const auto& collect : collectors) collect();
  std::string out;
  for (const Entry& e : entries) {
    absl::StrAppend(&out, "# HELP ", e.name, " ", EscapeHelp(e.help), "\n# TYPE ", e.name, " ",
                    TypeName(e.type), "\n");
    switch (e.type) {
      case Type::kCounter: {
        auto* f = static_cast<Family<Counter>*>(e.family);
        absl::MutexLock lock(&f->mu_);
        for (const auto& [values, c] : f->series_) {
          absl::StrAppend(&out, e.name, LabelText(e.label_names, values), " ",
                          FormatValue(c->value()), "\n");
        }
        break;
      }
      case Type::kGauge: {
        auto* f = static_cast<Family<Gauge>*>(e.family);
        absl::MutexLock lock(&f->mu_);
        for (const auto& [values, g] : f->series_) {
          absl::StrAppend(&out, e.name, LabelText(e.label_names, values), " ",
                          FormatValue(g->value()), "\n");
        }
        break;
      }
      case Type::kHistogram: {
        auto* f = static_cast<Family<Histogram>*>(e.family);
        absl::MutexLock lock(&f->mu_);
        for (const auto& [values, h] : f->series_) {
          const Histogram::Snapshot s = h->snapshot();
          for (size_t i = 0; i <= h->bounds().size(); ++i) {
            const std::string le = i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf";
            absl::StrAppend(&out, e.name, "_bucket", LabelText(e.label_names, values, "le", le),
                            " ", s.cumulative[i], "\n");
          }
          const std::string labels = LabelText(e.label_names, values);
          absl::StrAppend(&out, e.name, "_sum", labels, " ", FormatValue(s.sum), "\n", e.name,
                          "_count", labels, " ", s.count, "\n");
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace wxp::metrics
