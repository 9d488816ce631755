#include "client/agent/particle_state.h"

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

ParticleState Sample() {
  ParticleState s;
  s.id = 3;
  s.iteration = 7;
  s.x = "xx";
  s.v = "v-3-7.f32";
  s.p = "pp";
  s.toward_best = true;
  s.uploads = {"u1", "u2"};
  PendingMove m;
  m.iteration = 8;
  m.x = "nx";
  m.v = "v-3-8.f32";
  m.evaluated = true;
  m.scores = {{"accuracy", 0.75}};
  m.failed = false;
  m.reason = "";
  m.seconds = 1.5;
  s.pending = m;
  return s;
}

void ExpectSame(const ParticleState& a, const ParticleState& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.iteration, b.iteration);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.v, b.v);
  EXPECT_EQ(a.p, b.p);
  EXPECT_EQ(a.toward_best, b.toward_best);
  EXPECT_EQ(a.done, b.done);
  EXPECT_EQ(a.uploads, b.uploads);
  ASSERT_EQ(a.pending.has_value(), b.pending.has_value());
  if (a.pending) {
    EXPECT_EQ(a.pending->iteration, b.pending->iteration);
    EXPECT_EQ(a.pending->x, b.pending->x);
    EXPECT_EQ(a.pending->v, b.pending->v);
    EXPECT_EQ(a.pending->evaluated, b.pending->evaluated);
    EXPECT_EQ(a.pending->scores, b.pending->scores);
    EXPECT_EQ(a.pending->failed, b.pending->failed);
    EXPECT_EQ(a.pending->reason, b.pending->reason);
    EXPECT_EQ(a.pending->seconds, b.pending->seconds);
    EXPECT_EQ(a.pending->training_failed, b.pending->training_failed);
    EXPECT_EQ(a.pending->training_reason, b.pending->training_reason);
  }
}

TEST(ParticleStateTest, SavedStateLoadsBackUnchanged) {
  const std::string path = ::testing::TempDir() + "/particle-3.json";
  ParticleState s = Sample();
  ASSERT_TRUE(SaveParticleState(path, s).ok());
  absl::StatusOr<ParticleState> back = LoadParticleState(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(s, *back);
  // A failed local training is remembered with the move: a resent report must say so too.
  s.pending->training_failed = true;
  s.pending->training_reason = "`train.sh` exited with status 1: caf\xc3\xa9";
  ASSERT_TRUE(SaveParticleState(path, s).ok());
  back = LoadParticleState(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(s, *back);
  // Without a move in flight, too; a second save replaces the first.
  s.pending.reset();
  s.done = true;
  ASSERT_TRUE(SaveParticleState(path, s).ok());
  back = LoadParticleState(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(s, *back);
}

TEST(ParticleStateTest, StatesWrittenBeforeTrainingFailuresLoad) {
  // A pending move as older agents wrote it: no training fields, which means none failed.
  std::string text = ParticleStateToJson(Sample());
  absl::StatusOr<ParticleState> r = ParticleStateFromJson(text, "p");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(text.find("training"), std::string::npos);
  EXPECT_FALSE(r->pending->training_failed);
  EXPECT_EQ(r->pending->training_reason, "");
}

TEST(ParticleStateTest, DamagedFilesAreDataLossNamingThePath) {
  absl::StatusOr<ParticleState> r = ParticleStateFromJson("{not json", "/w/particle-1.json");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("/w/particle-1.json"), std::string::npos);
  r = ParticleStateFromJson(R"({"particle": 1})", "/w/particle-1.json");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  r = ParticleStateFromJson(R"({"particle": "one", "iteration": 0})", "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  // A truncated file (what a non-atomic write could leave) is refused, not half-read.
  const std::string full = ParticleStateToJson(Sample());
  r = ParticleStateFromJson(full.substr(0, full.size() / 2), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(LoadParticleState(::testing::TempDir() + "/absent.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace wxp::agent
