// The generated code links and behaves: binary and text round trips, optional-field
// presence (unset hyperparameters mean "documented default"), the example spec parses.
#include <fstream>
#include <sstream>
#include <type_traits>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/agent_config.pb.h"
#include "proto/server_config.pb.h"
#include "proto/swarm_spec.pb.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::v1 {
namespace {

SwarmSpec FullSpec() {
  SwarmSpec s;
  s.set_name("s1");
  s.set_base_model("gpt2");
  TensorSpec* t = s.mutable_schema()->add_tensors();
  t->set_name("a.lora_A.weight");
  t->set_dtype(DTYPE_BF16);
  t->add_shape(8);
  t->add_shape(768);
  SwarmHyperparameters* h = s.mutable_hyperparameters();
  h->set_inertia(0.1);
  h->set_seed(7);
  h->set_initial_velocity(TOWARD_BEST);
  UtilityComponent* u = s.add_utility();
  u->set_name("acc");
  u->set_direction(UtilityComponent::MAXIMIZE);
  u->set_weight(1);
  u->set_min_value(0);
  s.set_mode(ASYNC);
  s.set_upload_policy(ALWAYS);
  s.set_min_experts(3);
  return s;
}

TEST(ProtoTest, SwarmSpecRoundTripsThroughBinaryAndText) {
  const SwarmSpec s = FullSpec();
  SwarmSpec from_binary;
  ASSERT_TRUE(from_binary.ParseFromString(s.SerializeAsString()));
  EXPECT_EQ(from_binary.SerializeAsString(), s.SerializeAsString());
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(s, &text));
  SwarmSpec from_text;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &from_text));
  EXPECT_EQ(from_text.hyperparameters().seed(), 7u);
  EXPECT_EQ(from_text.schema().tensors(0).shape(1), 768);
  EXPECT_EQ(from_text.SerializeAsString(), s.SerializeAsString());
}

TEST(ProtoTest, UnsetHyperparametersAreDistinguishableFromZero) {
  SwarmSpec s = FullSpec();
  EXPECT_TRUE(s.hyperparameters().has_inertia());
  EXPECT_FALSE(s.hyperparameters().has_social());
  EXPECT_FALSE(s.hyperparameters().has_repel_enabled());
  s.mutable_hyperparameters()->set_repel_enabled(false);  // explicit false is kept
  SwarmSpec back;
  ASSERT_TRUE(back.ParseFromString(s.SerializeAsString()));
  EXPECT_TRUE(back.hyperparameters().has_repel_enabled());
  EXPECT_FALSE(back.hyperparameters().repel_enabled());
  EXPECT_FALSE(back.utility(0).has_max_value());
}

TEST(ProtoTest, ExampleSpecParses) {
  std::ifstream in("deploy/examples/swarm.textproto");
  ASSERT_TRUE(in.good()) << "example spec missing from runfiles";
  std::stringstream text;
  text << in.rdbuf();
  SwarmSpec s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text.str(), &s));
  EXPECT_EQ(s.name(), "legal-assistant-q4");
  EXPECT_EQ(s.utility_size(), 2);
  EXPECT_EQ(s.utility(1).direction(), UtilityComponent::MINIMIZE);
  EXPECT_EQ(s.mode(), SYNC);
  EXPECT_EQ(s.transport_dtype(), DTYPE_BF16);
  EXPECT_DOUBLE_EQ(s.hyperparameters().step_decay(), 0.95);
}

TEST(ProtoTest, TextParserRejectsUnknownFields) {
  SwarmSpec s;
  EXPECT_FALSE(google::protobuf::TextFormat::ParseFromString("name: \"x\" nmae: \"y\"", &s));
}

TEST(ProtoTest, ServicesAndRpcsExist) {
  static_assert(std::is_polymorphic_v<AgentService::Service>);
  static_assert(std::is_polymorphic_v<AdminService::Service>);
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* agent = pool->FindServiceByName("wxp.v1.AgentService");
  ASSERT_NE(agent, nullptr);
  for (const char* rpc : {"UploadBlob", "GetUploadOffset", "DownloadBlob", "Join",
                          "GetAssignment", "GetTargets", "Report", "Heartbeat"}) {
    EXPECT_NE(agent->FindMethodByName(rpc), nullptr) << rpc;
  }
  EXPECT_TRUE(agent->FindMethodByName("UploadBlob")->client_streaming());
  EXPECT_TRUE(agent->FindMethodByName("DownloadBlob")->server_streaming());
  const auto* admin = pool->FindServiceByName("wxp.v1.AdminService");
  ASSERT_NE(admin, nullptr);
  for (const char* rpc : {"CreateSwarm", "ListSwarms", "GetSwarmStatus", "ListParticles",
                          "GetHistory", "SetUtilityWeights", "GetUtilityWeights", "PauseSwarm",
                          "ResumeSwarm", "StopSwarm", "ExportBest", "ListClients",
                          "RevokeClient"}) {
    EXPECT_NE(admin->FindMethodByName(rpc), nullptr) << rpc;
  }
  EXPECT_TRUE(admin->FindMethodByName("ExportBest")->server_streaming());
}

TEST(ProtoTest, ConfigsParseFromText) {
  AgentConfig a;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"(server_address: "127.0.0.1:7443" swarm: "s1" capacity: 2
         external_command { argv: "python3" argv: "eval.py" timeout_seconds: 30 })",
      &a));
  EXPECT_EQ(a.evaluator_case(), AgentConfig::kExternalCommand);
  ServerConfig s;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"(listen: "127.0.0.1:0" data_dir: "/tmp/d" limits { max_chunk_bytes: 1048576 })", &s));
  EXPECT_EQ(s.limits().max_chunk_bytes(), 1048576u);
}

}  // namespace
}  // namespace wxp::v1
