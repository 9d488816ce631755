// The tensor half of Model Swarms (SPEC 4 steps 1, 2, 5, 6): arithmetic on flat fp32
// parameter vectors. Pure functions over caller-owned buffers; no allocation, no locking,
// safe to call concurrently on disjoint buffers.
//
// The move is memory-bandwidth bound: it reads x, v, p, g, g_w and writes x and v once per
// element, in one fused pass, with no temporaries.
#ifndef WXP_COMMON_SWARM_MOVE_H_
#define WXP_COMMON_SWARM_MOVE_H_

#include <cstdint>

namespace wxp {

// Normalised move coefficients (a + b + c + d == 1) and the step length, as issued by
// SwarmEngine::StartIteration.
struct MoveCoefficients {
  float a = 0, b = 0, c = 0, d = 0;
  float step = 0;
};

// v <- a*v + b*(p - x) + c*(g - x) + d*(x - gw);  x <- x + step*v.
// x and v are updated in place; p, g, gw are read only and may alias each other (but not x
// or v). All buffers hold n floats.
void MoveParticle(const MoveCoefficients& k, float* x, float* v, const float* p, const float* g,
                  const float* gw, int64_t n);

// The same move where p, g and gw are stored as bf16 (the transport dtype of a swarm that
// ships bf16 blobs); x and v stay fp32, maths is fp32.
void MoveParticleBf16Targets(const MoveCoefficients& k, float* x, float* v, const uint16_t* p,
                             const uint16_t* g, const uint16_t* gw, int64_t n);

// Restart (SPEC 4 step 5): x <- p, v <- 0.
void RestartParticle(float* x, float* v, const float* p, int64_t n);

// Local training (SPEC 4.4; the rule and its reasons are in common/swarm_engine.h):
// v <- v + (trained - x) / step (v unchanged when step <= 0);  x <- trained.
// x and v hold the moved position and velocity; trained may not alias them.
void FollowTrainedPosition(const float* trained, float step, float* x, float* v, int64_t n);

// Crossover child (SPEC 4 step 1): out = w*a + (1 - w)*b.
void Interpolate(double w, const float* a, const float* b, float* out, int64_t n);

// Initial velocity toward a partner (SPEC 4 step 2): v = target - x.
void Difference(const float* target, const float* x, float* v, int64_t n);

}  // namespace wxp

#endif  // WXP_COMMON_SWARM_MOVE_H_
