"""The documented wire contract of a TOKEN_MIXTURE swarm (SPEC 4.5), field by field.

The same independent client as contract_test.py (stubs generated from proto/ at test time,
Debian's python3-grpcio, no WXP code). A token swarm's expert is a whole model: an adapter
whose adapter_config.json names its base model by family (base_model_name_or_path) and by
content (wxp_base_model_blob_id), and that base model's safetensors file, which says what
it is in its "__metadata__" (wxp_legal_architecture, wxp_legal_config). This client builds
both from the documented format alone, walks CreateSwarm's space settings, every
documented join refusal, the particle protocol for alpha and a SYNC run to FINISHED with
two agents, and checks ExportBest's token_swarm_manifest.json field by field against the
combination's formula.

Run by tests/contract/contract_test.sh after coefficient_contract_test.py.
"""

import json
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract_test as ct  # noqa: E402  (generates the stubs; its tests do not run here)
import wire  # noqa: E402

pb, spec_pb, Code = ct.pb, ct.spec_pb, ct.Code
FIRM_A, FIRM_B = ct.FIRM_A, ct.FIRM_B

# Expert families, as base models name themselves in base_model_name_or_path.
FAM_MLP = "wxp-legal-byte-lm-contract"
FAM_TF = "wxp-legal-byte-transformer-contract"
# Architecture descriptions as proto/swarm_spec.proto documents them: the architecture's
# tag, then space-separated key=value settings, each a finite decimal number.
MLP_CONFIG = "wxp-legal-lm-v1 context=8 embed=8 hidden=32"
TF_CONFIG = "wxp-legal-transformer-v1 context=16 layers=1 heads=2"
MANIFEST = "token_swarm_manifest.json"


def base_model(architecture=None, config=None, fill=1.0, extra=None):
    """A base model's safetensors file: one small tensor, and the architecture description
    in "__metadata__" (a key left out when its value is None)."""
    metadata = dict(extra or {})
    if architecture is not None:
        metadata["wxp_legal_architecture"] = architecture
    if config is not None:
        metadata["wxp_legal_config"] = config
    return wire.safetensors([("embed.weight", "F32", (2, 3), [fill + i for i in range(6)])],
                            metadata=metadata)


def token_config(rank, family, base_id, **extra):
    """A token-swarm expert's adapter_config.json: PEFT's keys plus wxp_base_model_blob_id
    (left out when base_id is None)."""
    c = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": ["m"],
         "base_model_name_or_path": family}
    if base_id is not None:
        c["wxp_base_model_blob_id"] = base_id
    c.update(extra)
    return json.dumps(c, sort_keys=True)


def alpha_id(alpha):
    return wire.sha256_hex(wire.alpha_blob(alpha))


def one_hot(n, j):
    return [1.0 if i == j else 0.0 for i in range(n)]


def combination_weights(combination, alpha):
    """SwarmSpec.combination's documented weights, in double, in expert order: MIXTURE
    w_j = max(alpha_j, 0) / sum_k max(alpha_k, 0), uniform when no alpha_j is positive;
    LOG_LINEAR alpha itself."""
    w = [float(a) for a in alpha]
    if combination == "log_linear":
        return w
    w = [max(a, 0.0) for a in w]
    total = 0.0
    for a in w:
        total += a
    if total > 0:
        return [a / total for a in w]
    return [1.0 / len(w)] * len(w)


def token_spec(name, **kw):
    kw.setdefault("space", spec_pb.TOKEN_MIXTURE)
    kw.setdefault("combination", spec_pb.MIXTURE)
    kw.setdefault("base_model", "")  # refused in this space: experts name their own
    families = kw.pop("expert_families", None)
    s = ct.spec(name, **kw)
    if families is not None:
        s.expert_families.extend(families)
    return s


class Expert:
    """One token-swarm expert: adapter bytes, its base model's bytes and its config."""

    def __init__(self, rank, fill, family, base, in_features=4, out_features=3):
        self.adapter, _, _ = wire.lora_expert(rank, fill, in_features=in_features,
                                              out_features=out_features)
        self.id = wire.sha256_hex(self.adapter)
        self.base = base
        self.base_id = wire.sha256_hex(base)
        self.family = family
        self.config = token_config(rank, family, self.base_id)


class TokenSwarmTest(ct.WireTest):
    """TOKEN_MIXTURE swarms on one wxp-server: the spec's settings, the join's checks of
    each expert's base model, the particle protocol for alpha, and the manifest."""

    def upload_expert(self, e, who):
        """What a token swarm's agent uploads before its join: the adapter and, beside it,
        the base model its config names."""
        self.upload(e.adapter, who)
        self.upload(e.base, who)

    def targets(self, name, particle, k, who):
        return self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=particle, iteration=k), who)

    def report_alpha(self, name, particle, k, alpha, acc, who, blob_id=""):
        return self.call(self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=particle, iteration=k, position_blob_id=blob_id,
            position_alpha=alpha, scores={"acc": acc}, evaluation_seconds=0.25,
            idempotency_key="%d:%d" % (particle, k)), who)

    def assignments(self, name, who_list, n):
        """GetAssignment for each agent, checked as the token space documents it; returns
        ({particle: owner}, {particle: initial alpha}, the response of the last agent)."""
        owner, initial, asg = {}, {}, None
        for who in who_list:
            asg = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), who)
            self.assertEqual((asg.status, asg.swarm_state),
                             (pb.GetAssignmentResponse.ASSIGNED, pb.RUNNING))
            for p in asg.particles:
                alpha = list(p.initial_alpha)
                self.assertEqual(len(alpha), n)
                self.assertTrue(all(math.isfinite(a) for a in alpha))
                self.assertEqual(p.initial_position_blob_id, alpha_id(alpha))
                self.assertEqual(p.last_reported_iteration, -1)
                owner[p.particle_id], initial[p.particle_id] = who, alpha
        return owner, initial, asg

    def export_manifest(self, name):
        """ExportBest read to the end: exactly one file, the manifest, sha256-verified.
        Returns (manifest as parsed JSON, the position_blob_ids, the utilities)."""
        files, positions, utilities = self.export_best(name)
        self.assertEqual(list(files), [MANIFEST])
        return json.loads(files[MANIFEST]), positions, utilities

    def assert_manifest(self, m, combination, experts, alpha, utility):
        """token_swarm_manifest.json as common/token_manifest.h documents it. `experts` in
        pool order."""
        self.assertEqual(set(m), {"format", "version", "combination", "utility", "experts",
                                  "alpha", "weights"})
        self.assertEqual((m["format"], m["version"], m["combination"]),
                         ("wxp-token-swarm-manifest", 1, combination))
        self.assertEqual(m["utility"], utility)
        self.assertEqual(len(m["experts"]), len(experts))
        for got, (e, architecture, arch_config) in zip(m["experts"], experts):
            self.assertEqual(got, {
                "adapter_blob_id": e.id, "adapter_config_json": e.config,
                "base_model_blob_id": e.base_id, "base_model": e.family,
                "architecture": architecture, "architecture_config": arch_config})
        # alpha is g's, float for float (JSON carries each float32 exactly as a double).
        self.assertEqual(m["alpha"], list(alpha))
        self.assertEqual(m["weights"], combination_weights(combination, alpha))
        # An expert is exactly its two blobs: both downloadable by id, bytes as uploaded.
        for e, _, _ in experts:
            for blob_id, data in ((e.id, e.adapter), (e.base_id, e.base)):
                got = b"".join(c.chunk.data for c in self.download(blob_id, who=FIRM_B))
                self.assertEqual(got, data, blob_id)


    def test_create_swarm_token_settings(self):
        """CreateSwarm's TOKEN_MIXTURE settings: accepted, echoed and refused as documented."""
        created = self.create(token_spec("tok-spec", expert_families=[FAM_MLP, FAM_TF]))
        self.assertEqual(created.state, pb.PENDING_EXPERTS)
        s = created.spec
        self.assertEqual((s.space, s.combination, list(s.expert_families), s.expert_sharing),
                         (spec_pb.TOKEN_MIXTURE, spec_pb.MIXTURE, [FAM_MLP, FAM_TF],
                          spec_pb.ALLOWED))
        self.assertEqual((s.decoder, s.svd_rank, s.per_module, s.base_model),
                         (spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, 0, False, ""))
        self.assertFalse(s.HasField("schema"))
        st = self.status("tok-spec")
        self.assertEqual((st.space, st.combination, st.decoder, st.expert_sharing,
                          st.coefficient_dimension),
                         (spec_pb.TOKEN_MIXTURE, spec_pb.MIXTURE,
                          spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, spec_pb.ALLOWED, 0))
        # Before the pool: WAIT, with the space and the combination already.
        wait = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm="tok-spec"),
                         FIRM_A)
        self.assertEqual((wait.status, wait.space, wait.combination, list(wait.expert_blob_ids)),
                         (pb.GetAssignmentResponse.WAIT, spec_pb.TOKEN_MIXTURE,
                          spec_pb.MIXTURE, []))
        # Accepted: LOG_LINEAR, fp32 transport, no families (any), and the limits' edge:
        # 64 distinct entries of 256 bytes.
        s = self.create(token_spec("tok-spec-ll", combination=spec_pb.LOG_LINEAR,
                                   transport_dtype=spec_pb.DTYPE_F32)).spec
        self.assertEqual((s.combination, list(s.expert_families), s.transport_dtype),
                         (spec_pb.LOG_LINEAR, [], spec_pb.DTYPE_F32))
        # Not given: the resolved spec says MIXTURE, the documented default.
        s = self.create(token_spec("tok-spec-default",
                                   combination=spec_pb.TOKEN_COMBINATION_UNSPECIFIED)).spec
        self.assertEqual(s.combination, spec_pb.MIXTURE)
        self.assertEqual(self.status("tok-spec-default").combination, spec_pb.MIXTURE)
        edge = ["%03d" % i + "f" * 253 for i in range(64)]
        s = self.create(token_spec("tok-spec-64", expert_families=edge)).spec
        self.assertEqual(list(s.expert_families), edge)
        self.assertEqual(self.status("tok-spec-ll").combination, spec_pb.LOG_LINEAR)

        # Refused, naming the field; nothing created.
        schema = spec_pb.AdapterSchema(tensors=[spec_pb.TensorSpec(
            name="m.lora_A.weight", dtype=spec_pb.DTYPE_F32, shape=[2, 4])])
        cases = [
            # combination: a known value, and nowhere else.
            ("combination", dict(combination=7)),
            ("combination", dict(space=spec_pb.WEIGHTS)),
            ("combination", dict(space=spec_pb.EXPERT_COEFFICIENTS,
                                 decoder=spec_pb.LINEAR_AB)),
            ("combination", dict(space=0)),  # UNSPECIFIED is WEIGHTS
            # expert_families: TOKEN_MIXTURE only; at most 64 distinct non-empty entries of
            # at most 256 bytes.
            ("expert_families", dict(space=spec_pb.WEIGHTS, combination=0,
                                     expert_families=[FAM_MLP])),
            ("expert_families", dict(space=spec_pb.EXPERT_COEFFICIENTS, combination=0,
                                     decoder=spec_pb.LORA_PRODUCT, expert_families=[FAM_MLP])),
            ("expert_families", dict(expert_families=["f%d" % i for i in range(65)])),
            ("expert_families", dict(expert_families=[FAM_MLP, FAM_TF, FAM_MLP])),
            ("expert_families", dict(expert_families=[FAM_MLP, ""])),
            ("expert_families", dict(expert_families=["f" * 257])),
            # What EXPERT_COEFFICIENTS refuses, and the coefficient-only settings.
            ("decoder", dict(decoder=spec_pb.LORA_PRODUCT)),
            ("svd_rank", dict(svd_rank=2)),
            ("per_module", dict(per_module=True)),
            ("base_model", dict(base_model="tiny")),
            ("schema", dict(schema=schema)),
            ("template_blob_id", dict(template_blob_id="a" * 64)),
            ("transport_dtype", dict(transport_dtype=spec_pb.DTYPE_F16)),
            ("transport_dtype", dict(transport_dtype=spec_pb.DTYPE_BF16)),
            ("expert_sharing", dict(expert_sharing=spec_pb.FORBIDDEN)),
            ("local_training", dict(local_training=spec_pb.LocalTraining(
                every_k=1, steps=5, learning_rate=0.01, batch=4))),
        ]
        for i, (field, kw) in enumerate(cases):
            name = "tok-bad-%d" % i
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=token_spec(name, **kw)), says=field)
            self.refused(Code.NOT_FOUND, self.admin.GetSwarmStatus,
                         pb.GetSwarmStatusRequest(swarm=name))
        # Local training that is off is no training: accepted.
        s = self.create(token_spec("tok-spec-lt-off", local_training=spec_pb.LocalTraining(
            every_k=0))).spec
        self.assertEqual(s.space, spec_pb.TOKEN_MIXTURE)


    def test_join_refusals(self):
        """Join checks a token expert's base model like a schema: every documented refusal,
        with its code and a message naming the expert; nothing joins meanwhile."""
        name = "tok-join"
        self.create(token_spec(name, expert_families=[FAM_MLP, FAM_TF]))
        # Blobs of their own (one server serves every test, and blobs are content-addressed).
        good_base = base_model("mlp", MLP_CONFIG, 21.0)
        e = Expert(2, 1.1, FAM_MLP, good_base)
        self.upload(e.adapter, FIRM_A)
        other = Expert(3, 1.2, FAM_TF, base_model("transformer", TF_CONFIG, 25.0))
        self.upload(other.adapter, FIRM_A)

        def refuse(code, says, config, ids=None, configs=None, single=False):
            """Joins with `config` for the expert (per-expert, or as the one
            adapter_config_json of an older client); the refusal names the expert."""
            ids = ids or [e.id]
            if single:
                req = pb.JoinRequest(swarm=name, expert_blob_ids=ids, capacity=1,
                                     adapter_config_json=config)
            else:
                req = pb.JoinRequest(swarm=name, expert_blob_ids=ids, capacity=1,
                                     expert_adapter_configs=configs or [config])
            details = self.refused(code, self.agent.Join, req, FIRM_A, says=says)
            self.assertIn(ids[-1], details)
            return details

        # The base model is not uploaded: NOT_FOUND naming it.
        details = refuse(Code.NOT_FOUND, e.base_id, e.config)
        self.assertIn("base model", details)
        self.upload(good_base, FIRM_A)
        # The config does not name the base model's blob, or not as a blob id.
        refuse(Code.INVALID_ARGUMENT, "wxp_base_model_blob_id",
               token_config(2, FAM_MLP, None))
        refuse(Code.INVALID_ARGUMENT, "wxp_base_model_blob_id",
               token_config(2, FAM_MLP, e.base_id.upper()))
        refuse(Code.INVALID_ARGUMENT, "wxp_base_model_blob_id", token_config(2, FAM_MLP, 7))
        # The base model blob is not safetensors.
        junk = b"this is not a model file at all"
        self.upload(junk, FIRM_A)
        refuse(Code.INVALID_ARGUMENT, "not a safetensors",
               token_config(2, FAM_MLP, wire.sha256_hex(junk)))
        # Malformed descriptions: a key missing, an unknown architecture, a configuration
        # of another architecture, a setting that is not key=value or not a number, none.
        for says, base in (
                ("no wxp_legal_architecture", base_model(None, MLP_CONFIG)),
                ("no wxp_legal_config", base_model("mlp", None)),
                ("no wxp_legal_architecture", base_model(None, None, extra={"format": "pt"})),
                ("unknown architecture 'rnn'", base_model("rnn", MLP_CONFIG)),
                ("not of architecture 'transformer'", base_model("transformer", MLP_CONFIG)),
                ("not of architecture 'mlp'", base_model("mlp", TF_CONFIG)),
                ("not key=value", base_model("mlp", "wxp-legal-lm-v1 context")),
                ("'context' is not a number", base_model("mlp", "wxp-legal-lm-v1 context=x")),
                ("'embed' is not a number", base_model("mlp", "wxp-legal-lm-v1 embed=inf")),
                ("'embed' twice", base_model("mlp", "wxp-legal-lm-v1 embed=1 embed=2")),
                ("no settings", base_model("mlp", "wxp-legal-lm-v1"))):
            self.upload(base, FIRM_A)
            refuse(Code.INVALID_ARGUMENT, says,
                   token_config(2, FAM_MLP, wire.sha256_hex(base)))
        # No family named, a family the swarm does not accept (naming the families), no
        # config at all: per-expert configs and the one config of an older client alike.
        for single in (False, True):
            refuse(Code.INVALID_ARGUMENT, "base model",
                   token_config(2, "", e.base_id), single=single)
            details = refuse(Code.INVALID_ARGUMENT, "'fam-other'",
                             token_config(2, "fam-other", e.base_id), single=single)
            self.assertIn(FAM_MLP, details)
            self.assertIn(FAM_TF, details)
        refuse(Code.INVALID_ARGUMENT, "base model", "")
        refuse(Code.INVALID_ARGUMENT, "base model", "", single=True)
        # A good expert with a bad one: the bad one is named, and neither joins.
        refuse(Code.NOT_FOUND, other.base_id, None, ids=[e.id, other.id],
               configs=[e.config, other.config])
        self.assertEqual(self.status(name).experts_joined, 0)

        # With both base models uploaded the same join succeeds; the swarm has no schema.
        self.upload(other.base, FIRM_A)
        j = self.join(name, [e.id, other.id], FIRM_A, capacity=2, config="",
                      expert_adapter_configs=[e.config, other.config])
        self.assertEqual((j.state, j.experts_joined, j.min_experts),
                         (pb.RUNNING, 2, 2))
        self.assertFalse(j.HasField("schema"))
        self.assertEqual(j.transport_dtype, spec_pb.DTYPE_UNSPECIFIED)
        self.assertEqual(list(j.assigned_particle_ids), [0, 1])
        # Joins are closed once the pool exists.
        third = Expert(1, 1.3, FAM_MLP, good_base)
        self.upload(third.adapter, FIRM_B)
        self.refused(Code.FAILED_PRECONDITION, self.agent.Join, pb.JoinRequest(
            swarm=name, expert_blob_ids=[third.id], capacity=1,
            expert_adapter_configs=[third.config]), FIRM_B, says="joins are closed")


    def test_a_mixture_swarm_from_spec_to_export(self):
        """A MIXTURE swarm of three whole models, two architectures, two agents: from spec
        to FINISHED and the manifest."""
        name = "tok-life"
        # Three whole models of two architectures: firm-a's two experts share one MLP base
        # model; firm-b's expert is a transformer of another size (other adapter shapes).
        mlp, tf = base_model("mlp", MLP_CONFIG, 1.0), base_model("transformer", TF_CONFIG, 5.0)
        e1 = Expert(2, 0.1, FAM_MLP, mlp)
        e2 = Expert(3, 0.2, FAM_MLP, mlp)
        e3 = Expert(4, 0.3, FAM_TF, tf, in_features=6, out_features=5)
        arch = {e1.id: "mlp", e2.id: "mlp", e3.id: "transformer"}
        arch_config = {e1.id: MLP_CONFIG, e2.id: MLP_CONFIG, e3.id: TF_CONFIG}
        by_id = {e.id: e for e in (e1, e2, e3)}
        pool_order = sorted(by_id)
        n = 3
        # Where the agents' utility peaks, in pool order: one expert weighed out.
        target = (0.6, -0.3, 0.5)

        def score(alpha):
            return 1.0 / (1.0 + sum((a - t) ** 2 for a, t in zip(alpha, target)))

        self.create(token_spec(name, min_experts=3, expert_families=[FAM_MLP, FAM_TF],
                               hyperparameters=spec_pb.SwarmHyperparameters(
                                   pool_size=4, max_iterations=2, seed=17)))
        self.upload_expert(e1, FIRM_A)
        self.upload_expert(e2, FIRM_A)
        self.upload_expert(e3, FIRM_B)
        j = self.join(name, [e1.id, e2.id], FIRM_A, capacity=2, config="",
                      expert_adapter_configs=[e1.config, e2.config])
        self.assertEqual((j.state, j.experts_joined, list(j.assigned_particle_ids)),
                         (pb.PENDING_EXPERTS, 2, []))
        # firm-b as an older client: one adapter_config_json for its expert.
        j = self.join(name, [e3.id], FIRM_B, capacity=2, config=e3.config)
        self.assertEqual((j.state, j.experts_joined), (pb.RUNNING, 3))
        self.assertTrue(j.assigned_particle_ids)
        self.assertFalse(j.HasField("schema"))
        # A restarted agent's re-join, without configs: answered; the experts keep theirs.
        again = self.join(name, [e1.id, e2.id], FIRM_A, capacity=2, config="")
        self.assertEqual((again.state, again.experts_joined), (pb.RUNNING, 3))
        st = self.status(name)
        self.assertEqual((st.space, st.combination, st.coefficient_dimension, st.particles),
                         (spec_pb.TOKEN_MIXTURE, spec_pb.MIXTURE, n, 4))
        self.refused(Code.FAILED_PRECONDITION, self.admin.ExportBest,
                     pb.ExportBestRequest(swarm=name))  # before the initial evaluation

        # GetAssignment: the space and combination, every expert in pool order with the
        # config it joined with (naming its base model's blob), and alpha per particle.
        owner, initial, partners = {}, {}, []
        for who in (FIRM_A, FIRM_B):
            o, i, asg = self.assignments(name, [who], n)
            owner.update(o)
            initial.update(i)
            self.assertEqual((asg.space, asg.combination, asg.decoder, asg.svd_rank,
                              asg.per_module),
                             (spec_pb.TOKEN_MIXTURE, spec_pb.MIXTURE,
                              spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, 0, False))
            self.assertEqual(list(asg.expert_blob_ids), pool_order)
            self.assertEqual(list(asg.expert_adapter_configs),
                             [by_id[b].config for b in pool_order])
            for p in asg.particles:
                v = p.initial_velocity
                if v.WhichOneof("kind") == "partner_blob_id":
                    self.assertEqual(len(v.partner_alpha), n)
                    self.assertEqual(v.partner_blob_id, alpha_id(v.partner_alpha))
                    partners.append(list(v.partner_alpha))
                else:
                    self.assertEqual(list(v.partner_alpha), [])
        self.assertEqual(sorted(owner), [0, 1, 2, 3])
        # RANDOM_PEER partners are positions of the pool.
        self.assertTrue(partners)
        self.assertTrue(all(a in initial.values() for a in partners), partners)
        # The unit vectors e_j (expert j alone) are in the pool, each hosted by its firm.
        for blob, who in ((e1.id, FIRM_A), (e2.id, FIRM_A), (e3.id, FIRM_B)):
            self.assertIn(one_hot(n, pool_order.index(blob)),
                          [initial[i] for i in owner if owner[i] == who], blob)
        # Every agent receives every expert, adapter and base model: firm-b fetches firm-a's
        # adapters and the base model their configs name.
        for blob in pool_order:
            base_id = json.loads(by_id[blob].config)["wxp_base_model_blob_id"]
            for blob_id, data in ((blob, by_id[blob].adapter), (base_id, by_id[blob].base)):
                self.assertEqual(b"".join(m.chunk.data
                                          for m in self.download(blob_id, who=FIRM_B)), data)

        # Report refusals: alpha is the position, required, of the swarm's dimension and
        # finite, with an empty or canonical position_blob_id; nothing is recorded.
        p0 = min(i for i in owner if owner[i] == FIRM_A)
        x0 = initial[p0]
        for says, alpha, blob in (
                ("TOKEN_MIXTURE", [], alpha_id(x0)),
                ("TOKEN_MIXTURE", [], e1.id),
                ("dimension 3", [1.0, 0.0], ""),
                ("dimension 3", [1.0, 0.0, 0.0, 0.0], ""),
                ("alpha[2]", [1.0, 0.0, math.nan], ""),
                ("alpha[0]", [-math.inf, 0.0, 0.0], ""),
                ("position_blob_id", x0, e1.id),
                ("position_blob_id", x0, alpha_id([0.5, 0.5, 0.0]))):
            self.refused(Code.INVALID_ARGUMENT, self.agent.Report, pb.ReportRequest(
                swarm=name, particle_id=p0, iteration=0, position_blob_id=blob,
                position_alpha=alpha, scores={"acc": 0.5}), FIRM_A, says=says)
        self.assertEqual(self.status(name).global_best.particle_id, -1)

        # Iteration 0: each particle's initial alpha, inline; never an upload.
        best = (-1.0, None)
        for i in sorted(owner):
            r = self.report_alpha(name, i, 0, initial[i], score(initial[i]), owner[i],
                                  blob_id=alpha_id(initial[i]) if i % 2 else "")
            self.assertTrue(r.accepted and not r.duplicate and not r.upload_requested)
            self.assertAlmostEqual(r.utility, score(initial[i]))
            best = max(best, (r.utility, initial[i]))
        dup = self.report_alpha(name, p0, 0, x0, score(x0), FIRM_A)
        self.assertTrue(dup.accepted and dup.duplicate and not dup.upload_requested)
        self.refused(Code.ALREADY_EXISTS, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=p0, iteration=0, position_alpha=[0.2, 0.3, 0.5],
            scores={"acc": score(x0)}), FIRM_A)
        st = self.status(name)
        self.assertEqual((st.global_best.blob_id, list(st.global_best.alpha)),
                         (alpha_id(best[1]), best[1]))
        self.assertEqual(st.global_worst.blob_id, alpha_id(st.global_worst.alpha))

        # Iterations 1 and 2: targets carry g / g_w / p_i as alpha alone (blob ids empty);
        # the agents move alpha (toward g, away from g_w, and toward what their own
        # evaluations favour) and report it inline.
        x, k = dict(initial), 1
        while k <= 2:
            st = self.status(name)
            moved = {}
            for i in sorted(owner):
                t = self.targets(name, i, k, owner[i])
                self.assertEqual((t.status, t.iteration, t.swarm_state),
                                 (pb.GetTargetsResponse.READY, k, pb.RUNNING))
                for ref in (t.global_best, t.global_worst, t.personal_best):
                    self.assertEqual((ref.blob_id, len(ref.alpha)), ("", n))
                    self.assertTrue(all(math.isfinite(a) for a in ref.alpha))
                self.assertEqual([alpha_id(t.global_best.alpha), alpha_id(t.global_worst.alpha)],
                                 [st.global_best.blob_id, st.global_worst.blob_id])
                self.assertEqual(self.targets(name, i, k, owner[i]), t)  # safe to repeat
                c = t.coefficients
                self.assertAlmostEqual(c.a + c.b + c.c + c.d, 1.0, places=9)
                g, gw = list(t.global_best.alpha), list(t.global_worst.alpha)
                moved[i] = [wire.f32(xi + c.step * (c.c * (gi - xi) - c.d * (wi - xi))
                                     + 0.5 * (ti - xi))
                            for xi, gi, wi, ti in zip(x[i], g, gw, target)]
            for i in sorted(owner):
                r = self.report_alpha(name, i, k, moved[i], score(moved[i]), owner[i])
                self.assertTrue(r.accepted and not r.duplicate and not r.upload_requested)
                best = max(best, (r.utility, moved[i]))
                again = self.report_alpha(name, i, k, moved[i], score(moved[i]), owner[i])
                self.assertTrue(again.accepted and again.duplicate)
            x, k = moved, k + 1

        st = self.status(name)
        self.assertEqual((st.state, st.termination_reason, st.iteration),
                         (pb.FINISHED, "max_iterations", 2))
        self.assertEqual((st.global_best.blob_id, list(st.global_best.alpha)),
                         (alpha_id(best[1]), best[1]))
        self.assertAlmostEqual(st.global_best.utility, best[0])
        t = self.targets(name, p0, 3, FIRM_A)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.DONE, pb.FINISHED))
        done = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_B)
        self.assertEqual((done.status, done.combination),
                         (pb.GetAssignmentResponse.DONE, spec_pb.MIXTURE))

        # ExportBest: one file, the manifest, written for g's alpha blob.
        m, positions, utilities = self.export_manifest(name)
        self.assertEqual(positions, {st.global_best.blob_id})
        self.assertEqual(utilities, {st.global_best.utility})
        # g weighs one expert out (alpha_j < 0): MIXTURE clips it to weight 0.
        self.assertTrue(any(a < 0 for a in best[1]) and any(a > 0 for a in best[1]), best)
        self.assert_manifest(m, "mixture",
                             [(by_id[b], arch[b], arch_config[b]) for b in pool_order],
                             best[1], st.global_best.utility)
        self.assertEqual([w == 0 for w in m["weights"]], [a <= 0 for a in best[1]])
        self.assertAlmostEqual(sum(m["weights"]), 1.0, places=12)

    def _small_swarm(self, name, combination, experts, final):
        """A two-agent swarm of `experts` whose pool is their unit vectors: firm-a joins
        the first; firm-b the rest, with the one adapter_config_json of an older client
        when their configs are the same text. One SYNC iteration, in which particle 0
        reports `final` as the best position. Returns the final status."""
        n = len(experts)
        self.create(token_spec(name, combination=combination, min_experts=n,
                               hyperparameters=spec_pb.SwarmHyperparameters(
                                   pool_size=n, max_iterations=1, seed=5)))
        self.upload_expert(experts[0], FIRM_A)
        self.join(name, [experts[0].id], FIRM_A, capacity=n, config="",
                  expert_adapter_configs=[experts[0].config])
        for e in experts[1:]:
            self.upload_expert(e, FIRM_B)
        configs = [e.config for e in experts[1:]]
        if len(set(configs)) == 1:
            j = self.join(name, [e.id for e in experts[1:]], FIRM_B, capacity=n,
                          config=configs[0])
        else:
            j = self.join(name, [e.id for e in experts[1:]], FIRM_B, capacity=n, config="",
                          expert_adapter_configs=configs)
        self.assertEqual(j.state, pb.RUNNING)
        owner, initial, _ = self.assignments(name, [FIRM_A, FIRM_B], n)
        self.assertEqual(sorted(initial.values()), sorted(one_hot(n, j) for j in range(n)))
        for i in sorted(owner):
            self.report_alpha(name, i, 0, initial[i], 0.1 + 0.1 * i, owner[i])
        for i in sorted(owner):
            t = self.targets(name, i, 1, owner[i])
            self.assertEqual(t.status, pb.GetTargetsResponse.READY)
            alpha = final if i == 0 else initial[i]
            self.report_alpha(name, i, 1, alpha, 0.9 if i == 0 else 0.05, owner[i])
        st = self.status(name)
        self.assertEqual((st.state, st.combination), (pb.FINISHED, combination))
        self.assertEqual((list(st.global_best.alpha), st.global_best.blob_id),
                         ([wire.f32(a) for a in final], alpha_id(final)))
        return st

    def test_log_linear_proxy_tuning_manifest(self):
        """Proxy tuning as LOG_LINEAR documents it: experts (large, small tuned, small
        untuned) with alpha (1, 1, -1); the manifest's weights are alpha itself, negative
        entry included."""
        large = Expert(4, 0.4, FAM_TF, base_model("transformer", TF_CONFIG, 9.0),
                       in_features=6, out_features=5)
        small = base_model("mlp", MLP_CONFIG, 2.0)
        tuned, untuned = Expert(2, 0.5, FAM_MLP, small), Expert(2, 0.6, FAM_MLP, small)
        experts = [large, tuned, untuned]
        pool_order = sorted(e.id for e in experts)
        by_id = {e.id: e for e in experts}
        want = {large.id: 1.0, tuned.id: 1.0, untuned.id: -1.0}
        final = [want[b] for b in pool_order]
        st = self._small_swarm("tok-proxy", spec_pb.LOG_LINEAR, experts, final)
        m, positions, _ = self.export_manifest("tok-proxy")
        self.assertEqual(positions, {alpha_id(final)})
        arch = {large.id: ("transformer", TF_CONFIG)}
        self.assert_manifest(m, "log_linear", [
            (by_id[b],) + arch.get(b, ("mlp", MLP_CONFIG)) for b in pool_order],
            final, st.global_best.utility)
        self.assertEqual(m["weights"], final)

    def test_mixture_without_a_positive_alpha_is_uniform(self):
        """MIXTURE's documented fallback: no alpha_j > 0 gives every expert 1/n."""
        experts = [Expert(1, 0.7, FAM_MLP, base_model("mlp", MLP_CONFIG, 3.0)),
                   Expert(2, 0.8, FAM_TF, base_model("transformer", TF_CONFIG, 4.0))]
        final = [-0.5, 0.0]
        st = self._small_swarm("tok-uniform", spec_pb.MIXTURE, experts, final)
        m, _, _ = self.export_manifest("tok-uniform")
        pool_order = sorted(e.id for e in experts)
        by_id = {e.id: e for e in experts}
        arch = {experts[0].id: ("mlp", MLP_CONFIG), experts[1].id: ("transformer", TF_CONFIG)}
        self.assert_manifest(m, "mixture", [(by_id[b],) + arch[b] for b in pool_order],
                             final, st.global_best.utility)
        self.assertEqual(m["weights"], [0.5, 0.5])


if __name__ == "__main__":
    unittest.main(verbosity=2)
