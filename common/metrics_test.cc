#include "common/metrics.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace wxp::metrics {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithHelpTypeAndSortedSeries) {
  Registry r;
  Family<Counter>& rpcs = r.AddCounter("wxp_rpcs_total", "RPCs handled.", {"method", "code"});
  Family<Gauge>& up = r.AddGauge("wxp_up", "Whether it runs.");
  rpcs.WithLabels({"Report", "OK"}).Increment();
  rpcs.WithLabels({"Report", "OK"}).Increment(2);
  rpcs.WithLabels({"Join", "NOT_FOUND"}).Increment();
  up.Get().Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP wxp_rpcs_total RPCs handled.\n"
            "# TYPE wxp_rpcs_total counter\n"
            "wxp_rpcs_total{method=\"Join\",code=\"NOT_FOUND\"} 1\n"
            "wxp_rpcs_total{method=\"Report\",code=\"OK\"} 3\n"
            "# HELP wxp_up Whether it runs.\n"
            "# TYPE wxp_up gauge\n"
            "wxp_up 1\n");
}

TEST(MetricsTest, FamilyWithoutSeriesStillHasHelpAndType) {
  Registry r;
  r.AddCounter("wxp_things_total", "Things.", {"kind"});
  EXPECT_EQ(r.Render(),
            "# HELP wxp_things_total Things.\n"
            "# TYPE wxp_things_total counter\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry r;
  Family<Gauge>& g = r.AddGauge("wxp_g", "Back\\slash and\nnewline.", {"swarm"});
  g.WithLabels({"a\"b\\c\nd"}).Set(-2.5);
  EXPECT_EQ(r.Render(),
            "# HELP wxp_g Back\\\\slash and\\nnewline.\n"
            "# TYPE wxp_g gauge\n"
            "wxp_g{swarm=\"a\\\"b\\\\c\\nd\"} -2.5\n");
}

TEST(MetricsTest, RendersHistogramBucketsSumAndCount) {
  Registry r;
  Family<Histogram>& h =
      r.AddHistogram("wxp_rpc_duration_seconds", "Latency.", {0.01, 0.1, 1}, {"method"});
  Histogram& report = h.WithLabels({"Report"});
  report.Observe(0.005);
  report.Observe(0.1);  // le is inclusive
  report.Observe(0.5);
  report.Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP wxp_rpc_duration_seconds Latency.\n"
            "# TYPE wxp_rpc_duration_seconds histogram\n"
            "wxp_rpc_duration_seconds_bucket{method=\"Report\",le=\"0.01\"} 1\n"
            "wxp_rpc_duration_seconds_bucket{method=\"Report\",le=\"0.1\"} 2\n"
            "wxp_rpc_duration_seconds_bucket{method=\"Report\",le=\"1\"} 3\n"
            "wxp_rpc_duration_seconds_bucket{method=\"Report\",le=\"+Inf\"} 4\n"
            "wxp_rpc_duration_seconds_sum{method=\"Report\"} 7.605\n"
            "wxp_rpc_duration_seconds_count{method=\"Report\"} 4\n");
}

TEST(MetricsTest, HistogramWithoutLabelsPutsLeAlone) {
  Registry r;
  r.AddHistogram("wxp_batch", "Sizes.", {1, 2}).Get().Observe(2);
  EXPECT_EQ(r.Render(),
            "# HELP wxp_batch Sizes.\n"
            "# TYPE wxp_batch histogram\n"
            "wxp_batch_bucket{le=\"1\"} 0\n"
            "wxp_batch_bucket{le=\"2\"} 1\n"
            "wxp_batch_bucket{le=\"+Inf\"} 1\n"
            "wxp_batch_sum 2\n"
            "wxp_batch_count 1\n");
}

TEST(MetricsTest, FormatsValuesShortestAndSpecials) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(10), "10");
  EXPECT_EQ(FormatValue(-12000), "-12000");
  EXPECT_EQ(FormatValue(4294967296.0), "4294967296");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.123456789012), "0.123456789012");
  EXPECT_EQ(FormatValue(1e-5), "1e-05");
  EXPECT_EQ(FormatValue(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  const double third = 1.0 / 3;
  EXPECT_EQ(std::strtod(FormatValue(third).c_str(), nullptr), third);
}

TEST(MetricsTest, CollectorsRunBeforeEachRenderAndClearDropsSeries) {
  Registry r;
  Family<Gauge>& iteration = r.AddGauge("wxp_swarm_iteration", "Iteration.", {"swarm"});
  int calls = 0;
  r.AddCollector([&] {
    ++calls;
    iteration.Clear();
    if (calls == 1) iteration.WithLabels({"old"}).Set(3);
    iteration.WithLabels({"new"}).Set(calls);
  });
  EXPECT_EQ(r.Render(),
            "# HELP wxp_swarm_iteration Iteration.\n"
            "# TYPE wxp_swarm_iteration gauge\n"
            "wxp_swarm_iteration{swarm=\"new\"} 1\n"
            "wxp_swarm_iteration{swarm=\"old\"} 3\n");
  EXPECT_EQ(r.Render(),
            "# HELP wxp_swarm_iteration Iteration.\n"
            "# TYPE wxp_swarm_iteration gauge\n"
            "wxp_swarm_iteration{swarm=\"new\"} 2\n");
}

TEST(MetricsTest, CountersIgnoreNegativeAmountsAndGaugesAdd) {
  Registry r;
  Counter& c = r.AddCounter("wxp_c_total", "C.").Get();
  c.Increment(-5);
  EXPECT_EQ(c.value(), 0);
  Gauge& g = r.AddGauge("wxp_g", "G.").Get();
  g.Add(2);
  g.Add(-0.5);
  EXPECT_EQ(g.value(), 1.5);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  Family<Counter>& f = r.AddCounter("wxp_c_total", "C.", {"t"});
  Histogram& h = r.AddHistogram("wxp_h", "H.", {1}).Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        f.WithLabels({"x"}).Increment();
        h.Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(f.WithLabels({"x"}).value(), 40000);
  EXPECT_EQ(h.snapshot().count, 40000u);
}

TEST(MetricsTest, ExponentialBuckets) {
  EXPECT_EQ(ExponentialBuckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
}

TEST(MetricsDeathTest, MisuseAbortsWithAMessage) {
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("wxp-bad", "x");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("wxp_a_total", "x");
        r.AddGauge("wxp_a_total", "x");
      },
      "registered twice");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddHistogram("wxp_h", "x", {1}, {"le"});
      },
      "invalid or repeated label name");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCounter("wxp_a_total", "x", {"a"}).WithLabels({"1", "2"});
      },
      "2 label values for 1 label names");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddHistogram("wxp_h", "x", {2, 1});
      },
      "strictly increasing");
}

}  // namespace
}  // namespace wxp::metrics
