// The SwarmStore contract as one parameterised test suite: whatever code above the store
// relies on, asserted for every implementation. A store's test target links this library
// and instantiates the suite with a factory for its store:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest, ::testing::Values(StoreFactory{...}));
//
// store_contract_test.cc does so for SQLite and the in-memory fake, postgres_store_test.cc
// for PostgreSQL.
#ifndef WXP_SERVER_STORE_TESTING_STORE_CONTRACT_H_
#define WXP_SERVER_STORE_TESTING_STORE_CONTRACT_H_

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/store/swarm_store.h"

namespace wxp::store::testing {

struct StoreFactory {
  std::string name;  // the suffix of the test names
  // A fresh, empty store for one test; `tag` is unique per test (for file or database names).
  // nullptr fails the test (the factory reports why).
  std::function<std::unique_ptr<SwarmStore>(const std::string& tag)> make;
};

class StoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  std::unique_ptr<SwarmStore> store_;
};

// The records the suite writes, for store-specific tests beside it.
SwarmRecord Swarm(const std::string& name);
AuditRecord Audit(const std::string& swarm, const std::string& action);
ParticleRow Particle(int id, const std::string& owner);
EvaluationRecord Eval(int particle, int iteration, double score);

}  // namespace wxp::store::testing

#endif  // WXP_SERVER_STORE_TESTING_STORE_CONTRACT_H_
