// The generated code links and behaves, and the API keeps its documented rules:
// binary and text round trips of a fully populated spec, optional-field presence (unset
// hyperparameters mean "documented default"), the annotated examples parse, the services
// and RPC signatures exist, no unary message can carry bytes (weights move only in
// streams), and every message, field, enum value and RPC has a comment.
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/agent_config.pb.h"
#include "proto/server_config.pb.h"
#include "proto/swarm_spec.pb.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::v1 {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::TextFormat;
using google::protobuf::util::MessageDifferencer;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Adds a failure for every field of `m` (recursively) that is unset, except the full names
// in `exempt`. A real oneof counts as set when one alternative is; repeated fields need an
// element; proto3 scalars without presence need a non-default value.
void ExpectEveryFieldSet(const Message& m, const std::set<std::string>& exempt = {}) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (exempt.count(f->full_name())) continue;
    if (const auto* oneof = f->real_containing_oneof()) {
      EXPECT_TRUE(r->HasOneof(m, oneof)) << "oneof " << oneof->full_name() << " unset";
      if (!r->HasField(m, f)) continue;
    } else if (f->is_repeated()) {
      EXPECT_GT(r->FieldSize(m, f), 0) << f->full_name() << " is empty";
    } else {
      EXPECT_TRUE(r->HasField(m, f)) << f->full_name() << " unset";
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        ExpectEveryFieldSet(r->GetRepeatedMessage(m, f, j), exempt);
      }
    } else if (r->HasField(m, f)) {
      ExpectEveryFieldSet(r->GetMessage(m, f), exempt);
    }
  }
}

SwarmSpec FullSpec() {
  SwarmSpec s;
  s.set_name("s1");
  s.set_base_model("gpt2");
  s.set_description("every field");
  TensorSpec* t = s.mutable_schema()->add_tensors();
  t->set_name("a.lora_A.weight");
  t->set_dtype(DTYPE_BF16);
  t->add_shape(8);
  t->add_shape(768);
  s.mutable_schema()->set_fingerprint(std::string(64, 'a'));
  s.set_template_blob_id(std::string(64, 'b'));
  SwarmHyperparameters* h = s.mutable_hyperparameters();
  h->set_pool_size(12);
  h->set_inertia(0.1);
  h->set_cognitive(0.2);
  h->set_social(0.5);
  h->set_repel(0.01);
  h->set_repel_enabled(false);
  h->set_step_length(1.0);
  h->set_step_decay(0.9);
  h->set_min_step_length(0.05);
  h->set_patience(10);
  h->set_restart_patience(4);
  h->set_restart_cooldown(0);
  h->set_max_iterations(200);
  h->set_weight_randomness(false);
  h->set_seed(7);
  h->set_initial_velocity(TOWARD_BEST);
  UtilityComponent* u = s.add_utility();
  u->set_name("acc");
  u->set_direction(UtilityComponent::MAXIMIZE);
  u->set_weight(1);
  u->set_min_value(0);
  u->set_max_value(1);
  s.set_mode(ASYNC);
  s.set_quorum_count(3);
  s.set_round_deadline_seconds(60);
  s.set_upload_policy(ALWAYS);
  s.set_audit_sample_rate(0.1);
  s.set_min_experts(3);
  s.set_transport_dtype(DTYPE_F16);
  // A proto round trip, not a valid spec: the space fields below cannot all apply at once.
  s.set_space(EXPERT_COEFFICIENTS);
  s.set_decoder(LORA_PRODUCT_SVD);
  s.set_svd_rank(8);
  s.set_per_module(true);
  s.set_expert_sharing(ALLOWED);
  s.set_combination(LOG_LINEAR);
  s.add_expert_families("wxp-legal-byte-lm-0123456789abcdef");
  s.mutable_local_training()->set_every_k(2);
  s.mutable_local_training()->set_steps(20);
  s.mutable_local_training()->set_learning_rate(0.005);
  s.mutable_local_training()->set_batch(64);
  s.mutable_local_training()->set_dp_epsilon(4);
  s.mutable_local_training()->set_dp_delta(1e-5);
  s.mutable_local_training()->set_dp_clip_norm(1);
  s.mutable_audit()->set_enabled(true);
  s.mutable_audit()->set_sample_rate(0.25);
  (*s.mutable_audit()->mutable_tolerance())["acc"] = 0.01;
  s.mutable_audit()->set_quarantine_after(2);
  return s;
}

TEST(ProtoTest, FullSpecSetsEveryField) {
  // Keeps FullSpec honest as fields are added: the round trips below then cover them.
  ExpectEveryFieldSet(FullSpec());
}

TEST(ProtoTest, SwarmSpecRoundTripsThroughBinaryAndText) {
  const SwarmSpec s = FullSpec();
  SwarmSpec from_binary;
  ASSERT_TRUE(from_binary.ParseFromString(s.SerializeAsString()));
  EXPECT_TRUE(MessageDifferencer::Equals(from_binary, s));

  std::string text;
  ASSERT_TRUE(TextFormat::PrintToString(s, &text));
  SwarmSpec from_text;
  ASSERT_TRUE(TextFormat::ParseFromString(text, &from_text)) << text;
  EXPECT_TRUE(MessageDifferencer::Equals(from_text, s)) << text;
  EXPECT_EQ(from_text.hyperparameters().seed(), 7u);
  EXPECT_EQ(from_text.schema().tensors(0).shape(1), 768);
  EXPECT_EQ(from_text.quorum_rule_case(), SwarmSpec::kQuorumCount);
  // Explicit zero / false values survive both encodings (they are not "unset").
  EXPECT_TRUE(from_text.hyperparameters().has_restart_cooldown());
  EXPECT_TRUE(from_text.hyperparameters().has_repel_enabled());
  EXPECT_FALSE(from_text.hyperparameters().repel_enabled());
  EXPECT_TRUE(from_binary.utility(0).has_min_value());
  EXPECT_EQ(from_binary.utility(0).min_value(), 0.0);
}

TEST(ProtoTest, UnsetHyperparametersAreDistinguishableFromZero) {
  SwarmSpec s;
  s.mutable_hyperparameters()->set_inertia(0.1);
  const SwarmHyperparameters& h = s.hyperparameters();
  EXPECT_TRUE(h.has_inertia());
  EXPECT_FALSE(h.has_cognitive());
  EXPECT_FALSE(h.has_social());
  EXPECT_FALSE(h.has_repel());
  EXPECT_FALSE(h.has_repel_enabled());
  EXPECT_FALSE(h.has_step_length());
  EXPECT_FALSE(h.has_step_decay());
  EXPECT_FALSE(h.has_min_step_length());
  EXPECT_FALSE(h.has_patience());
  EXPECT_FALSE(h.has_restart_patience());
  EXPECT_FALSE(h.has_restart_cooldown());
  EXPECT_FALSE(h.has_max_iterations());
  EXPECT_FALSE(h.has_weight_randomness());
  EXPECT_FALSE(h.has_seed());
  EXPECT_FALSE(s.has_quorum());
  EXPECT_FALSE(s.has_round_deadline_seconds());
  EXPECT_FALSE(s.has_min_experts());
  EXPECT_EQ(s.quorum_rule_case(), SwarmSpec::QUORUM_RULE_NOT_SET);

  s.mutable_hyperparameters()->set_repel_enabled(false);  // an explicit false is kept
  SwarmSpec back;
  ASSERT_TRUE(back.ParseFromString(s.SerializeAsString()));
  EXPECT_TRUE(back.hyperparameters().has_repel_enabled());
  EXPECT_FALSE(back.hyperparameters().repel_enabled());
  EXPECT_FALSE(back.hyperparameters().has_patience());

  // Every hyperparameter with a non-zero documented default tracks presence; pool_size
  // (0 = 2n) and initial_velocity (UNSPECIFIED = RANDOM_PEER) default through zero.
  const Descriptor* d = SwarmHyperparameters::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->name() == "pool_size" || f->name() == "initial_velocity") continue;
    EXPECT_TRUE(f->has_presence()) << f->name() << " should be proto3 optional";
  }
}

TEST(ProtoTest, QuorumIsAFractionOrACount) {
  SwarmSpec s;
  s.set_quorum(0.5);
  EXPECT_EQ(s.quorum_rule_case(), SwarmSpec::kQuorum);
  s.set_quorum_count(4);  // the alternatives exclude each other
  EXPECT_FALSE(s.has_quorum());
  EXPECT_EQ(s.quorum_count(), 4);
}

TEST(ProtoTest, ExampleSwarmSpecParsesAndShowsEveryField) {
  const std::string text = ReadFile("deploy/examples/swarm.textproto");
  ASSERT_FALSE(text.empty()) << "example spec missing from runfiles";
  SwarmSpec s;
  ASSERT_TRUE(TextFormat::ParseFromString(text, &s));
  EXPECT_EQ(s.name(), "legal-assistant-q4");
  EXPECT_EQ(s.utility_size(), 2);
  EXPECT_EQ(s.utility(1).direction(), UtilityComponent::MINIMIZE);
  EXPECT_EQ(s.mode(), SYNC);
  EXPECT_EQ(s.quorum_rule_case(), SwarmSpec::kQuorum);
  EXPECT_DOUBLE_EQ(s.quorum(), 0.75);
  EXPECT_EQ(s.transport_dtype(), DTYPE_BF16);
  EXPECT_DOUBLE_EQ(s.hyperparameters().step_decay(), 0.95);
  EXPECT_TRUE(s.hyperparameters().repel_enabled());
  // The example is a reference: it sets everything but the schema sources (explained in
  // comments there, since they name files of a real deployment), pool_size, whose
  // default is 0, the second component's upper bound (it has none), and the coefficient
  // space's and the token swarm's settings, which a WEIGHTS swarm must leave unset, and
  // local training and audits, which the example leaves off (all shown in comments there).
  ExpectEveryFieldSet(
      s, {"wxp.v1.SwarmSpec.schema", "wxp.v1.SwarmSpec.template_blob_id",
          "wxp.v1.SwarmHyperparameters.pool_size", "wxp.v1.UtilityComponent.max_value",
          "wxp.v1.SwarmSpec.decoder", "wxp.v1.SwarmSpec.svd_rank", "wxp.v1.SwarmSpec.per_module",
          "wxp.v1.SwarmSpec.local_training", "wxp.v1.SwarmSpec.combination",
          "wxp.v1.SwarmSpec.expert_families", "wxp.v1.SwarmSpec.audit"});
  EXPECT_EQ(s.space(), WEIGHTS);
  EXPECT_FALSE(s.utility(1).has_max_value());
}

TEST(ProtoTest, ExampleConfigsParse) {
  AgentConfig agent;
  const std::string agent_text = ReadFile("deploy/examples/agent.textproto");
  ASSERT_FALSE(agent_text.empty());
  ASSERT_TRUE(TextFormat::ParseFromString(agent_text, &agent));
  EXPECT_EQ(agent.swarm(), "legal-assistant-q4");
  EXPECT_EQ(agent.evaluator_case(), AgentConfig::kExternalCommand);
  EXPECT_EQ(agent.external_command().argv_size(), 3);
  EXPECT_EQ(agent.external_command().env().at("CUDA_VISIBLE_DEVICES"), "0");
  EXPECT_EQ(agent.capacity(), 2);
  EXPECT_EQ(agent.train_command().argv_size(), 2);
  EXPECT_EQ(agent.train_command().timeout_seconds(), 900);

  ServerConfig server;
  const std::string server_text = ReadFile("deploy/examples/server.textproto");
  ASSERT_FALSE(server_text.empty());
  ASSERT_TRUE(TextFormat::ParseFromString(server_text, &server));
  EXPECT_EQ(server.limits().max_chunk_bytes(), 4u << 20);
  EXPECT_EQ(server.limits().max_blob_bytes(), uint64_t{4} << 30);
  EXPECT_EQ(server.tls().ca(), "certs/ca.crt");
  ExpectEveryFieldSet(server.limits());
}

TEST(ProtoTest, ConfigsParseFromText) {
  AgentConfig a;
  ASSERT_TRUE(TextFormat::ParseFromString(
      R"(server_address: "127.0.0.1:7443" swarm: "s1" capacity: 2
         builtin_legal_text { shard: "GPL" split: "test" })",
      &a));
  EXPECT_EQ(a.evaluator_case(), AgentConfig::kBuiltinLegalText);
  ASSERT_TRUE(TextFormat::ParseFromString(R"(synthetic { optimum_seed: 3 noise: 0.5 })", &a));
  EXPECT_EQ(a.evaluator_case(), AgentConfig::kSynthetic);
  ServerConfig s;
  ASSERT_TRUE(TextFormat::ParseFromString(
      R"(listen: "127.0.0.1:0" data_dir: "/tmp/d" plaintext: true
         limits { max_chunk_bytes: 1048576 default_round_deadline_seconds: 30 })",
      &s));
  EXPECT_EQ(s.limits().max_chunk_bytes(), 1048576u);
  EXPECT_TRUE(s.plaintext());
}

TEST(ProtoTest, TextParserRejectsUnknownFields) {
  SwarmSpec s;
  EXPECT_FALSE(TextFormat::ParseFromString("name: \"x\" nmae: \"y\"", &s));
  AgentConfig a;
  EXPECT_FALSE(TextFormat::ParseFromString("capacity: 1 capacty: 2", &a));
}

// The generated service classes have the documented signatures (a compile-time check).
template <typename Service, typename Req, typename Resp>
using UnaryHandler = grpc::Status (Service::*)(grpc::ServerContext*, const Req*, Resp*);

TEST(ProtoTest, ServiceClassesHaveTheRpcs) {
  static_assert(std::is_polymorphic_v<AgentService::Service>);
  static_assert(std::is_polymorphic_v<AdminService::Service>);
  static_assert(std::is_class_v<AgentService::Stub>);
  static_assert(std::is_class_v<AdminService::Stub>);
  [[maybe_unused]] UnaryHandler<AgentService::Service, JoinRequest, JoinResponse> join =
      &AgentService::Service::Join;
  [[maybe_unused]] UnaryHandler<AgentService::Service, GetTargetsRequest, GetTargetsResponse>
      targets = &AgentService::Service::GetTargets;
  [[maybe_unused]] UnaryHandler<AgentService::Service, ReportRequest, ReportResponse> report =
      &AgentService::Service::Report;
  [[maybe_unused]] grpc::Status (AgentService::Service::*upload)(
      grpc::ServerContext*, grpc::ServerReader<UploadBlobRequest>*, UploadBlobResponse*) =
      &AgentService::Service::UploadBlob;
  [[maybe_unused]] grpc::Status (AgentService::Service::*download)(
      grpc::ServerContext*, const DownloadBlobRequest*, grpc::ServerWriter<DownloadBlobResponse>*) =
      &AgentService::Service::DownloadBlob;
  [[maybe_unused]] UnaryHandler<AdminService::Service, CreateSwarmRequest, CreateSwarmResponse>
      create = &AdminService::Service::CreateSwarm;
  [[maybe_unused]] grpc::Status (AdminService::Service::*do_export)(
      grpc::ServerContext*, const ExportBestRequest*, grpc::ServerWriter<ExportChunk>*) =
      &AdminService::Service::ExportBest;
}

struct Rpc {
  const char* name;
  const char* request;
  const char* response;
  bool client_streaming;
  bool server_streaming;
};

void ExpectRpcs(const char* service, const std::vector<Rpc>& rpcs) {
  const auto* s = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  ASSERT_NE(s, nullptr) << service;
  EXPECT_EQ(s->method_count(), static_cast<int>(rpcs.size())) << service;
  for (const Rpc& rpc : rpcs) {
    const auto* m = s->FindMethodByName(rpc.name);
    ASSERT_NE(m, nullptr) << rpc.name;
    EXPECT_EQ(m->input_type()->name(), rpc.request) << rpc.name;
    EXPECT_EQ(m->output_type()->name(), rpc.response) << rpc.name;
    EXPECT_EQ(m->client_streaming(), rpc.client_streaming) << rpc.name;
    EXPECT_EQ(m->server_streaming(), rpc.server_streaming) << rpc.name;
  }
}

TEST(ProtoTest, ServicesHaveTheDocumentedRpcs) {
  ExpectRpcs(
      "wxp.v1.AgentService",
      {{"UploadBlob", "UploadBlobRequest", "UploadBlobResponse", true, false},
       {"GetUploadOffset", "GetUploadOffsetRequest", "GetUploadOffsetResponse", false, false},
       {"DownloadBlob", "DownloadBlobRequest", "DownloadBlobResponse", false, true},
       {"Join", "JoinRequest", "JoinResponse", false, false},
       {"GetAssignment", "GetAssignmentRequest", "GetAssignmentResponse", false, false},
       {"GetTargets", "GetTargetsRequest", "GetTargetsResponse", false, false},
       {"Report", "ReportRequest", "ReportResponse", false, false},
       {"Heartbeat", "HeartbeatRequest", "HeartbeatResponse", false, false},
       {"PullAuditTask", "PullAuditTaskRequest", "PullAuditTaskResponse", false, false},
       {"ReportAudit", "ReportAuditRequest", "ReportAuditResponse", false, false}});
  ExpectRpcs("wxp.v1.AdminService",
             {{"CreateSwarm", "CreateSwarmRequest", "CreateSwarmResponse", false, false},
              {"ListSwarms", "ListSwarmsRequest", "ListSwarmsResponse", false, false},
              {"GetSwarmStatus", "GetSwarmStatusRequest", "SwarmStatus", false, false},
              {"ListParticles", "ListParticlesRequest", "ListParticlesResponse", false, false},
              {"GetHistory", "GetHistoryRequest", "GetHistoryResponse", false, false},
              {"SetUtilityWeights", "SetUtilityWeightsRequest", "UtilityWeights", false, false},
              {"GetUtilityWeights", "GetUtilityWeightsRequest", "UtilityWeights", false, false},
              {"PauseSwarm", "SwarmControlRequest", "SwarmStatus", false, false},
              {"ResumeSwarm", "SwarmControlRequest", "SwarmStatus", false, false},
              {"StopSwarm", "SwarmControlRequest", "SwarmStatus", false, false},
              {"ExportBest", "ExportBestRequest", "ExportChunk", false, true},
              {"ListClients", "ListClientsRequest", "ListClientsResponse", false, false},
              {"RevokeClient", "RevokeClientRequest", "ClientInfo", false, false},
              {"UnquarantineClient", "UnquarantineClientRequest", "ClientInfo", false, false}});
}

// True if a message of type `d` can hold a bytes field, directly or nested.
bool CanHoldBytes(const Descriptor* d, std::set<const Descriptor*>& seen) {
  if (!seen.insert(d).second) return false;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() == FieldDescriptor::TYPE_BYTES) return true;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        CanHoldBytes(f->message_type(), seen)) {
      return true;
    }
  }
  return false;
}

TEST(ProtoTest, WeightsMoveOnlyInStreams) {
  for (const char* name : {"wxp.v1.AgentService", "wxp.v1.AdminService"}) {
    const auto* s = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < s->method_count(); ++i) {
      const auto* m = s->method(i);
      std::set<const Descriptor*> seen_in, seen_out;
      if (!m->client_streaming()) {
        EXPECT_FALSE(CanHoldBytes(m->input_type(), seen_in)) << m->full_name();
      }
      if (!m->server_streaming()) {
        EXPECT_FALSE(CanHoldBytes(m->output_type(), seen_out)) << m->full_name();
      }
    }
  }
}

// Checks that every element of the API carries a comment, using the descriptor set that
// protoc wrote with --include_source_info.
class CommentCheck {
 public:
  explicit CommentCheck(const google::protobuf::FileDescriptorProto& file) : file_(file) {
    for (const auto& loc : file.source_code_info().location()) {
      if (!loc.leading_comments().empty() || !loc.trailing_comments().empty()) {
        commented_.insert(std::vector<int>(loc.path().begin(), loc.path().end()));
      }
    }
  }

  void Run() {
    for (int i = 0; i < file_.message_type_size(); ++i) {
      Message(file_.message_type(i), {4, i}, file_.package() + ".");
    }
    for (int i = 0; i < file_.enum_type_size(); ++i) {
      Enum(file_.enum_type(i), {5, i}, file_.package() + ".");
    }
    for (int i = 0; i < file_.service_size(); ++i) {
      const auto& s = file_.service(i);
      Expect({6, i}, s.name());
      for (int j = 0; j < s.method_size(); ++j) {
        Expect({6, i, 2, j}, s.name() + "." + s.method(j).name());
      }
    }
  }

 private:
  void Message(const google::protobuf::DescriptorProto& m, std::vector<int> path,
               const std::string& prefix) {
    if (m.options().map_entry()) return;  // synthesised for map<> fields
    const std::string name = prefix + m.name();
    // Empty request messages (ListSwarmsRequest {}) need no comment of their own.
    if (m.field_size() > 0) Expect(path, name);
    for (int i = 0; i < m.field_size(); ++i) {
      Expect(Append(path, {2, i}), name + "." + m.field(i).name());
    }
    for (int i = 0; i < m.nested_type_size(); ++i) {
      Message(m.nested_type(i), Append(path, {3, i}), name + ".");
    }
    for (int i = 0; i < m.enum_type_size(); ++i) {
      Enum(m.enum_type(i), Append(path, {4, i}), name + ".");
    }
  }

  void Enum(const google::protobuf::EnumDescriptorProto& e, std::vector<int> path,
            const std::string& prefix) {
    const std::string name = prefix + e.name();
    Expect(path, name);
    for (int i = 0; i < e.value_size(); ++i) {
      Expect(Append(path, {2, i}), name + "." + e.value(i).name());
    }
  }

  static std::vector<int> Append(std::vector<int> path, std::initializer_list<int> more) {
    path.insert(path.end(), more);
    return path;
  }

  void Expect(const std::vector<int>& path, const std::string& what) {
    EXPECT_TRUE(commented_.count(path)) << file_.name() << ": " << what << " has no comment";
  }

  const google::protobuf::FileDescriptorProto& file_;
  std::set<std::vector<int>> commented_;
};

TEST(ProtoTest, EveryElementIsDocumented) {
  google::protobuf::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromString(ReadFile("proto/wxp_descriptor_set.pb")))
      << "descriptor set missing from runfiles";
  int checked = 0;
  for (const auto& file : set.file()) {
    if (file.name().rfind("proto/", 0) != 0) continue;  // well-known types
    CommentCheck(file).Run();
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

}  // namespace
}  // namespace wxp::v1
