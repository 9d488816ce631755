#include "common/swarm_move.h"

#include <cstring>

namespace wxp {
namespace {

inline float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

void MoveParticle(const MoveCoefficients& k, float* __restrict x, float* __restrict v,
                  const float* p, const float* g, const float* gw, int64_t n) {
  const float a = k.a, b = k.b, c = k.c, d = k.d, step = k.step;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float vi = a * v[i] + b * (p[i] - xi) + c * (g[i] - xi) + d * (xi - gw[i]);
    v[i] = vi;
    x[i] = xi + step * vi;
  }
}

void MoveParticleBf16Targets(const MoveCoefficients& k, float* __restrict x, float* __restrict v,
                             const uint16_t* p, const uint16_t* g, const uint16_t* gw, int64_t n) {
  const float a = k.a, b = k.b, c = k.c, d = k.d, step = k.step;
  for (int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float vi = a * v[i] + b * (Bf16ToFloat(p[i]) - xi) + c * (Bf16ToFloat(g[i]) - xi) +
                     d * (xi - Bf16ToFloat(gw[i]));
    v[i] = vi;
    x[i] = xi + step * vi;
  }
}

void RestartParticle(float* __restrict x, float* __restrict v, const float* p, int64_t n) {
  std::memcpy(x, p, static_cast<size_t>(n) * sizeof(float));
  std::memset(v, 0, static_cast<size_t>(n) * sizeof(float));
}

void Interpolate(double w, const float* a, const float* b, float* __restrict out, int64_t n) {
  const float wa = static_cast<float>(w), wb = static_cast<float>(1.0 - w);
  for (int64_t i = 0; i < n; ++i) out[i] = wa * a[i] + wb * b[i];
}

void FollowTrainedPosition(const float* trained, float step, float* __restrict x,
                           float* __restrict v, int64_t n) {
  if (step > 0) {
    for (int64_t i = 0; i < n; ++i) v[i] += (trained[i] - x[i]) / step;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = trained[i];
}

void Difference(const float* target, const float* x, float* __restrict v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = target[i] - x[i];
}

}  // namespace wxp
