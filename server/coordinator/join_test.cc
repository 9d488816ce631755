// Joins with per-expert adapter configs (JoinRequest.expert_adapter_configs) and with the
// one config of older clients (adapter_config_json): what the server keeps for each expert
// and hands to every agent, and the refusals, which change nothing.
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/adapter.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

using ::absl::StatusCode;

// A LoRA expert of one module (in 6, out 5) and rank `rank`.
std::string LoraBlob(int rank, float fill) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {rank, 6}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {5, rank}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.01f * static_cast<float>(i);
  return *SerializeAdapter(a);
}

std::string Config(int r, int lora_alpha, const std::string& base = "tiny") {
  return "{\"peft_type\": \"LORA\", \"r\": " + std::to_string(r) +
         ", \"lora_alpha\": " + std::to_string(lora_alpha) +
         ", \"target_modules\": [\"m\"], \"base_model_name_or_path\": \"" + base + "\"}";
}

class JoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok());
    c_ = *std::move(c);
    wxp::v1::SwarmSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "name: 's' min_experts: 2 base_model: 'tiny' hyperparameters { seed: 3 pool_size: 3 } "
        "utility { name: 'acc' weight: 1 min_value: 0 max_value: 1 } "
        "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
        &spec));
    ASSERT_TRUE(c_->CreateSwarm(admin_, spec).ok());
    ids_ = {*blobs_.Put(LoraBlob(2, 0.1f)), *blobs_.Put(LoraBlob(3, 0.2f))};
  }

  // A join of both experts by firm-a.
  wxp::v1::JoinRequest TwoExperts() const {
    wxp::v1::JoinRequest r;
    r.set_swarm("s");
    for (const std::string& id : ids_) r.add_expert_blob_ids(id);
    r.set_capacity(3);
    return r;
  }

  // Expert blob id -> the config GetAssignment hands out for it.
  std::map<std::string, std::string> HandedOut(const Caller& who) {
    auto as = c_->GetAssignment(who, "s");
    EXPECT_TRUE(as.ok()) << as.status();
    if (!as.ok()) return {};
    EXPECT_EQ(as->expert_adapter_configs_size(), as->expert_blob_ids_size());
    std::map<std::string, std::string> out;
    for (int j = 0; j < as->expert_blob_ids_size(); ++j) {
      out[as->expert_blob_ids(j)] = as->expert_adapter_configs(j);
    }
    return out;
  }

  void ExpectRefused(const wxp::v1::JoinRequest& r, const std::string& names) {
    absl::StatusOr<wxp::v1::JoinResponse> got = c_->Join(a_, r);
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << names << ": " << got.status();
    EXPECT_NE(got.status().message().find(names), std::string::npos) << got.status();
    EXPECT_TRUE(store_.ListExperts("s")->empty()) << names << " changed the store";
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> c_;
  const Caller admin_{"ops", Role::kAdmin}, a_{"firm-a", Role::kAgent}, b_{"firm-b", Role::kAgent};
  std::vector<std::string> ids_;
};

TEST_F(JoinTest, EachExpertKeepsItsOwnConfigForEveryAgent) {
  wxp::v1::JoinRequest r = TwoExperts();
  r.add_expert_adapter_configs(Config(2, 4));
  r.add_expert_adapter_configs(Config(3, 12));
  r.set_adapter_config_json(Config(2, 4));  // as a client that also talks to old servers
  auto joined = c_->Join(a_, r);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->state(), wxp::v1::RUNNING);
  const std::map<std::string, std::string> want = {{ids_[0], Config(2, 4)},
                                                   {ids_[1], Config(3, 12)}};
  EXPECT_EQ(HandedOut(a_), want);
  EXPECT_EQ(HandedOut(b_), want);  // an agent without experts decodes alike
  // A re-join keeps the configs the experts first joined with.
  wxp::v1::JoinRequest again = TwoExperts();
  ASSERT_TRUE(c_->Join(a_, again).ok());
  EXPECT_EQ(HandedOut(a_), want);
}

TEST_F(JoinTest, OneConfigFromAnOlderClientAppliesToEveryExpert) {
  // The one config gives r = 2, which the rank-3 expert does not have: refused as before.
  wxp::v1::JoinRequest mixed = TwoExperts();
  mixed.set_adapter_config_json(Config(2, 4));
  ExpectRefused(mixed, "has rank 3 but adapter_config.json gives the module r = 2");
  // Two experts of one rank: the config is each one's.
  wxp::v1::JoinRequest r;
  r.set_swarm("s");
  const std::string third = *blobs_.Put(LoraBlob(2, 0.3f));
  r.add_expert_blob_ids(ids_[0]);
  r.add_expert_blob_ids(third);
  r.set_capacity(3);
  r.set_adapter_config_json(Config(2, 4));
  auto joined = c_->Join(a_, r);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(HandedOut(a_),
            (std::map<std::string, std::string>{{ids_[0], Config(2, 4)}, {third, Config(2, 4)}}));
}

TEST_F(JoinTest, AnEmptyEntryIsAnExpertWithoutConfig) {
  wxp::v1::JoinRequest r = TwoExperts();
  r.add_expert_adapter_configs("");
  r.add_expert_adapter_configs(Config(3, 12));
  ASSERT_TRUE(c_->Join(a_, r).ok());
  EXPECT_EQ(HandedOut(a_),
            (std::map<std::string, std::string>{{ids_[0], ""}, {ids_[1], Config(3, 12)}}));
}

TEST_F(JoinTest, PerExpertConfigRefusalsNameTheFieldAndIndex) {
  wxp::v1::JoinRequest one = TwoExperts();
  one.add_expert_adapter_configs(Config(2, 4));
  ExpectRefused(one, "expert_adapter_configs has 1 entries but expert_blob_ids has 2");

  wxp::v1::JoinRequest unparsable = TwoExperts();
  unparsable.add_expert_adapter_configs(Config(2, 4));
  unparsable.add_expert_adapter_configs("[1]");
  ExpectRefused(unparsable, "expert_adapter_configs[1]");

  wxp::v1::JoinRequest big = TwoExperts();
  big.add_expert_adapter_configs("{\"peft_type\": \"LORA\", \"pad\": \"" +
                                 std::string(64 << 10, 'p') + "\"}");
  big.add_expert_adapter_configs(Config(3, 12));
  ExpectRefused(big, "expert_adapter_configs[0] is larger than 64 KiB");

  wxp::v1::JoinRequest disagree = TwoExperts();
  disagree.add_expert_adapter_configs(Config(2, 4));
  disagree.add_expert_adapter_configs(Config(3, 12));
  disagree.set_adapter_config_json(Config(3, 12));
  ExpectRefused(disagree, "adapter_config_json differs from expert_adapter_configs[0]");

  wxp::v1::JoinRequest other_base = TwoExperts();
  other_base.add_expert_adapter_configs(Config(2, 4));
  other_base.add_expert_adapter_configs(Config(3, 12, "huge"));
  ExpectRefused(other_base, "expert_adapter_configs[1]");

  wxp::v1::JoinRequest bad_one_config = TwoExperts();
  bad_one_config.set_adapter_config_json("{not json");
  ExpectRefused(bad_one_config, "adapter_config_json");
}

// Blobs whose first read of one blob waits until the test lets it go: it holds a join in
// the middle of reading its expert.
class GatedBlobs : public PositionBlobs {
 public:
  GatedBlobs(PositionBlobs* inner, std::string gated) : inner_(inner), gated_(std::move(gated)) {}
  bool Has(const std::string& id) override { return inner_->Has(id); }
  absl::StatusOr<std::string> Put(absl::string_view bytes) override { return inner_->Put(bytes); }
  absl::StatusOr<std::string> ReadAll(const std::string& id) override {
    if (id == gated_ && !reading_.HasBeenNotified()) {
      reading_.Notify();
      release_.WaitForNotification();
    }
    return inner_->ReadAll(id);
  }
  void WaitUntilReading() { reading_.WaitForNotification(); }
  void Release() { release_.Notify(); }

 private:
  PositionBlobs* inner_;
  const std::string gated_;
  absl::Notification reading_, release_;
};

// A join reads and checks its experts (64 MiB each in production, and every expert of a
// coefficient swarm again for the space) without the coordinator's lock: status answers
// meanwhile instead of waiting seconds for the join.
TEST(JoinLockTest, StatusAnswersWhileAJoinReadsItsExpert) {
  store::MemoryStore store;
  MemoryBlobs memory;
  const std::string first = *memory.Put(LoraBlob(2, 0.1f));
  const std::string held = *memory.Put(LoraBlob(3, 0.2f));
  GatedBlobs blobs(&memory, held);
  FakeClock clock;
  auto c = Coordinator::Create({&store, &blobs, &clock, 64, [](const std::string&) {}});
  ASSERT_TRUE(c.ok()) << c.status();
  wxp::v1::SwarmSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "name: 's' min_experts: 3 utility { name: 'acc' weight: 1 } "
      "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
      &spec));
  ASSERT_TRUE((*c)->CreateSwarm({"ops", Role::kAdmin}, spec).ok());
  auto join = [&](const std::string& who, const std::string& id) {
    wxp::v1::JoinRequest r;
    r.set_swarm("s");
    r.add_expert_blob_ids(id);
    r.set_capacity(2);
    return (*c)->Join({who, Role::kAgent}, r);
  };
  ASSERT_TRUE(join("firm-b", first).ok());

  absl::StatusOr<wxp::v1::JoinResponse> joined;
  std::thread joiner([&] { joined = join("firm-a", held); });
  blobs.WaitUntilReading();
  absl::StatusOr<wxp::v1::SwarmStatus> status;
  absl::Notification answered;
  std::thread reader([&] {
    status = (*c)->GetSwarmStatus("s");
    answered.Notify();
  });
  // A deadline, not a sleep: with the fix the answer is immediate; without it, status
  // would wait for the held join, and the test fails instead of hanging.
  const bool in_time = answered.WaitForNotificationWithTimeout(absl::Seconds(60));
  blobs.Release();
  reader.join();
  joiner.join();
  EXPECT_TRUE(in_time) << "GetSwarmStatus waited for a join reading its expert";
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->experts_joined(), 1);  // the held join has not happened yet
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->experts_joined(), 2);
  EXPECT_EQ((*c)->GetSwarmStatus("s")->experts_joined(), 2);
}

}  // namespace
}  // namespace wxp::server
