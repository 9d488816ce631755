// Prometheus metrics for WXP's processes: counters, gauges and histograms, each in a family
// with a fixed list of label names, kept in a Registry that renders them in the Prometheus
// text exposition format 0.0.4 (what GET /metrics answers; metrics_http.h serves it).
//
// Conventions (https://prometheus.io/docs/practices/naming/): names start with `wxp_`,
// carry their unit (`_seconds`, `_bytes`), and counters end in `_total`. Label sets must be
// bounded: a label takes values from a small known set (a method, a status code, a swarm),
// never one value per particle, blob or request.
//
// Misuse is a programming error found at start-up, not a runtime condition: an invalid or
// duplicate name, or a wrong number of label values, aborts the process with a message.
//
// Thread-safety: everything is thread-safe. A series returned by a family lives as long as
// the registry, unless the family is Clear()ed (then references to its series dangle).
#ifndef WXP_COMMON_METRICS_H_
#define WXP_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace wxp::metrics {

// One series' label values, in the order of its family's label names.
using LabelValues = std::vector<std::string>;

// A value that only goes up (reset only by a process restart).
class Counter {
 public:
  // `amount` must be >= 0 (a negative amount is ignored).
  void Increment(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in cumulative buckets, plus their sum and count.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, strictly increasing and finite (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // per bucket (not cumulative), +Inf last
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bucket bounds: `count` bounds from `start`, each `factor` times the previous.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

enum class Type { kCounter, kGauge, kHistogram };

// The series of one metric name, one per distinct label values.
template <typename T>
class Family {
 public:
  // The series with these label values, created (at zero) on first use.
  T& WithLabels(const LabelValues& values);
  // Shorthand for a family without labels.
  T& Get() { return WithLabels({}); }
  // Drops every series (for values recomputed at each scrape, so a vanished subject's
  // series vanish too). References handed out before are invalid afterwards.
  void Clear();

 private:
  friend class Registry;
  Family(std::string name, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)), label_names_(std::move(label_names)), make_(std::move(make)) {}

  const std::string name_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> series_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not
  // starting with "__"; a histogram's labels may not include "le"). The family lives as
  // long as the registry.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds,
                                  std::vector<std::string> label_names = {});

  // Runs before every Render(), in the order added: refreshes values read from elsewhere
  // (gauges of the current state). Renders are serialized, so a collector that Clear()s and
  // refills a family is never seen half done.
  void AddCollector(std::function<void()> collect);

  // Every family, in the order added, in the text exposition format 0.0.4: a HELP and a
  // TYPE line, then its series ordered by label values. A family without series still has
  // its HELP and TYPE lines.
  std::string Render();

 private:
  struct Entry {
    std::string name, help;
    Type type;
    std::vector<std::string> label_names;
    void* family;  // Family<Counter|Gauge|Histogram>*, by `type`
  };
  void Register(const std::string& name, const std::vector<std::string>& label_names,
                bool histogram) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex render_mu_;  // one Render() at a time, collectors included
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Counter>>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> collectors_ ABSL_GUARDED_BY(mu_);
};

// The text format's number: shortest decimal that reads back as the same double; "+Inf",
// "-Inf", "NaN".
std::string FormatValue(double value);
// A label value as written between the quotes: backslash, double quote and newline escaped.
std::string EscapeLabelValue(const std::string& value);

namespace internal {
[[noreturn]] void Fail(const std::string& message);
}  // namespace internal

template <typename T>
T& Family<T>::WithLabels(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    internal::Fail(name_ + ": " + std::to_string(values.size()) + " label values for " +
                   std::to_string(label_names_.size()) + " label names");
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<T>& slot = series_[values];
  if (!slot) slot = make_();
  return *slot;
}

template <typename T>
void Family<T>::Clear() {
  absl::MutexLock lock(&mu_);
  series_.clear();
}

}  // namespace wxp::metrics

#endif  // WXP_COMMON_METRICS_H_
