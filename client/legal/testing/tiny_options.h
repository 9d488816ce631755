// The built-in MLP at a size for unit tests (it pretrains in about a second on one thread),
// working in the test's own temporary directory: the model, trainer and DP tests share it,
// so the base model they pretrain is one file of one shape.
#ifndef WXP_CLIENT_LEGAL_TESTING_TINY_OPTIONS_H_
#define WXP_CLIENT_LEGAL_TESTING_TINY_OPTIONS_H_

#include <cstdlib>
#include <string>

#include "client/legal/evaluator.h"

namespace wxp::legal::legal_testing {

inline LegalOptions TinyOptions() {
  LegalOptions o;
  o.work_dir = std::string(std::getenv("TEST_TMPDIR")) + "/legal-work";
  o.model.context = 8;
  o.model.embed = 8;
  o.model.hidden = 32;
  o.model.lora_rank = 2;
  o.model.lora_alpha = 4;
  o.model.pretrain_steps = 150;
  o.model.pretrain_batch = 64;
  o.model.threads = 1;
  return o;
}

}  // namespace wxp::legal::legal_testing

#endif  // WXP_CLIENT_LEGAL_TESTING_TINY_OPTIONS_H_
