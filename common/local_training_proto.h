// The one conversion of the wire's local-training settings (SwarmSpec.local_training, the
// same message in GetAssignmentResponse and SwarmStatus; SPEC 4.4) to LocalTrainingParams,
// used by the server when it validates a spec and by the agent when it trains.
#ifndef WXP_COMMON_LOCAL_TRAINING_PROTO_H_
#define WXP_COMMON_LOCAL_TRAINING_PROTO_H_

#include "common/local_trainer.h"
#include "proto/swarm_spec.pb.h"

namespace wxp {

// Field for field; an absent message (every field 0) is off. No checks here: callers
// judge the result with LocalTrainingParams::Validate.
inline LocalTrainingParams LocalTrainingFromProto(const v1::LocalTraining& t) {
  LocalTrainingParams p;
  p.every_k = t.every_k();
  p.steps = t.steps();
  p.learning_rate = t.learning_rate();
  p.batch = t.batch();
  p.dp_epsilon = t.dp_epsilon();
  p.dp_delta = t.dp_delta();
  p.dp_clip_norm = t.dp_clip_norm();
  return p;
}

}  // namespace wxp

#endif  // WXP_COMMON_LOCAL_TRAINING_PROTO_H_
