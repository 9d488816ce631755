// What wxp-agent remembers about each particle it runs, and how that survives a crash: one
// JSON file per particle, replaced atomically (write to a temporary, fsync, rename) after
// every step, so a reader finds the old state or the new one, never a mix.
//
// The file's fields are the agent's contract with its own future self: a report whose answer
// was lost is resent verbatim from `pending`, a move is never recomputed after it was
// reported, and an iteration is never skipped.
#ifndef WXP_CLIENT_AGENT_PARTICLE_STATE_H_
#define WXP_CLIENT_AGENT_PARTICLE_STATE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/utility.h"

namespace wxp::agent {

// A move computed (and possibly evaluated) but not yet acknowledged by the server.
struct PendingMove {
  int iteration = 0;
  std::string x;  // blob id of the new position
  std::string v;  // velocity file name ("" = zero)
  bool evaluated = false;
  Scores scores;
  bool failed = false;
  std::string reason;
  double seconds = 0;
  // Local training (SPEC 4.4) of this move failed: x is the moved, untrained position; the
  // report says so (ReportRequest.training_failed). Reason: valid UTF-8, <= 1024 bytes.
  bool training_failed = false;
  std::string training_reason;
};

// What survives a crash, per particle.
struct ParticleState {
  int id = 0;
  int iteration = -1;        // last acknowledged iteration
  std::string x, v, p;       // blob ids of x and p; v's file name ("" = zero)
  bool toward_best = false;  // v_0 = g - x still to be formed at the first move
  bool done = false;
  std::optional<PendingMove> pending;
  std::vector<std::string> uploads;  // acknowledged positions the server asked for
};

// The state as the JSON text stored on disk.
std::string ParticleStateToJson(const ParticleState& state);
// The inverse; DataLoss naming `path` (only used in messages) if `text` is not a complete
// particle state.
absl::StatusOr<ParticleState> ParticleStateFromJson(const std::string& text,
                                                    const std::string& path);

// Replaces the file at `path` with `state` atomically. Errors name the path.
absl::Status SaveParticleState(const std::string& path, const ParticleState& state);
// Reads it back: NotFound if there is none, DataLoss if it is unreadable as a state.
absl::StatusOr<ParticleState> LoadParticleState(const std::string& path);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_PARTICLE_STATE_H_
