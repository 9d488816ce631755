// The engine state <-> store rows copy (internal/swarm_state.h) loses nothing either way.
#include "server/coordinator/internal/swarm_state.h"

#include "gtest/gtest.h"

namespace wxp::server::coordinator_internal {
namespace {

// Every field away from its default, and no two alike, so a field copied into the wrong
// place or not at all shows.
SwarmEngineState Sample() {
  SwarmEngineState st;
  for (int i = 0; i < 3; ++i) {
    ParticleRecord p;
    p.evaluated = true;
    p.utility = 0.1 * (i + 1);
    p.utility_iteration = 4 + i;
    p.best_utility = 0.5 + i;
    p.personal_best = {i, 2 + i};
    p.stale_iterations = 1 + i;
    p.stale_through = 3 + i;
    p.cooldown = i;
    p.restarts = 2 * i;
    p.started_iteration = 5 + i;
    p.restart_at_started = i % 2 == 1;
    p.recorded_started = true;
    st.particles.push_back(p);
  }
  st.global_best = {2, 7};
  st.global_worst = {1, 3};
  st.global_best_utility = 0.875;
  st.global_worst_utility = -0.25;
  st.closed_iterations = 9;
  st.last_global_improvement = 6;
  st.stopped = true;
  return st;
}

TEST(EngineRowsTest, StateSurvivesTheRowsAndTheRowKeepsItsOwnFields) {
  const SwarmEngineState st = Sample();
  store::SwarmRecord row;
  row.name = "s";
  row.utility_version = 3;
  row.open_round = 10;
  row.round_best = {0, 9};
  GlobalsToRow(st, row);
  EXPECT_EQ(row.name, "s");
  EXPECT_EQ(row.utility_version, 3);
  EXPECT_EQ(row.open_round, 10);
  EXPECT_EQ(row.round_best, (PositionRef{0, 9}));

  std::vector<store::ParticleRow> particles(st.particles.size());
  for (size_t i = 0; i < particles.size(); ++i) particles[i].engine = st.particles[i];
  const SwarmEngineState back = EngineStateFromRows(row, particles);
  EXPECT_EQ(back.particles, st.particles);
  EXPECT_EQ(back.global_best, st.global_best);
  EXPECT_EQ(back.global_worst, st.global_worst);
  EXPECT_EQ(back.global_best_utility, st.global_best_utility);
  EXPECT_EQ(back.global_worst_utility, st.global_worst_utility);
  EXPECT_EQ(back.closed_iterations, st.closed_iterations);
  EXPECT_EQ(back.last_global_improvement, st.last_global_improvement);
  EXPECT_EQ(back.stopped, st.stopped);

  // And the other way: the row a restored state writes is the row it came from.
  store::SwarmRecord again = row;
  again.global_best = {};
  again.closed_iterations = 0;
  again.stopped = false;
  GlobalsToRow(back, again);
  EXPECT_EQ(again, row);
}

}  // namespace
}  // namespace wxp::server::coordinator_internal
