#include "common/rng.h"

#include <cmath>

namespace wxp {

double CounterRng::NextGaussian() {
  // 1 - u keeps the log argument in (0, 1].
  const double u1 = 1.0 - NextUniform();
  const double u2 = NextUniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace wxp
