"""The documented wire contract of an EXPERT_COEFFICIENTS swarm (SPEC 4.3), field by field.

The same independent client as contract_test.py (stubs generated from proto/ at test time,
Debian's python3-grpcio, no WXP code), walking one LORA_PRODUCT swarm of three PEFT LoRA
experts of different ranks and scalings from CreateSwarm to ExportBest: the space settings,
per-expert adapter configs on Join, alpha on every particle RPC (initial_alpha,
partner_alpha, PositionRef.alpha, ReportRequest.position_alpha), the canonical alpha blob
ids, and an export whose weights are g decoded, checked against the experts by hand.

Run by tests/contract/contract_test.sh after contract_test.py.
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
ADMIN, FIRM_A, FIRM_B = ct.ADMIN, ct.FIRM_A, ct.FIRM_B


def config(r, lora_alpha, base="tiny"):
    return ('{"peft_type": "LORA", "r": %d, "lora_alpha": %d, "target_modules": ["m"], '
            '"base_model_name_or_path": "%s"}' % (r, lora_alpha, base))


def alpha_id(alpha):
    return wire.sha256_hex(wire.alpha_blob(alpha))


def one_hot(n, j):
    return [1.0 if i == j else 0.0 for i in range(n)]


# Where the swarm's utility peaks: agents score alpha by its distance to it.
TARGET = (0.2, 0.5, 0.3)


def score(alpha):
    return 1.0 / (1.0 + sum((a - t) ** 2 for a, t in zip(alpha, TARGET)))


def coef_spec(name, **kw):
    kw.setdefault("space", spec_pb.EXPERT_COEFFICIENTS)
    kw.setdefault("decoder", spec_pb.LORA_PRODUCT)
    return ct.spec(name, **kw)


class CoefficientSwarmTest(ct.WireTest):
    """One EXPERT_COEFFICIENTS swarm from creation to export."""

    def targets(self, name, particle, k, who):
        return self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=particle, iteration=k), who)

    def report_alpha(self, name, particle, k, alpha, who, blob_id="", acc=None, key=None):
        """A Report as the contract recommends in this space: position_alpha, no
        position_blob_id, and the key "<particle_id>:<iteration>"."""
        return self.call(self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=particle, iteration=k, position_blob_id=blob_id,
            position_alpha=alpha, scores={"acc": score(alpha) if acc is None else acc},
            evaluation_seconds=0.5,
            idempotency_key="%d:%d" % (particle, k) if key is None else key), who)

    def assert_target_ref(self, ref, what, dimension=3):
        """g, g_w or p_i in a coefficient swarm's GetTargets: alpha always set, blob_id
        always empty (the client derives it). Returns the derived id."""
        self.assertEqual(ref.blob_id, "", what)
        self.assertEqual(len(ref.alpha), dimension, what)
        self.assertTrue(all(math.isfinite(a) for a in ref.alpha), what)
        return alpha_id(ref.alpha)

    def assert_ref(self, ref, what):
        """A PositionRef in a coefficient swarm's SwarmStatus: alpha set wherever blob_id is,
        and blob_id the id of alpha's canonical blob."""
        if ref.blob_id:
            self.assertEqual(len(ref.alpha), 3, what)
            self.assertEqual(ref.blob_id, alpha_id(ref.alpha), what)
        else:
            self.assertEqual(list(ref.alpha), [], what)

    def assert_status_space(self, st, decoder, svd_rank, per_module, dimension):
        """SwarmStatus's particle space fields of a coefficient swarm."""
        self.assertEqual((st.space, st.decoder, st.svd_rank, st.per_module, st.expert_sharing,
                          st.coefficient_dimension),
                         (spec_pb.EXPERT_COEFFICIENTS, decoder, svd_rank, per_module,
                          spec_pb.ALLOWED, dimension))

    def test_create_swarm_space_settings(self):
        created = self.create(coef_spec("coef-spec", svd_rank=0))
        s = created.spec
        self.assertEqual((s.space, s.decoder, s.svd_rank, s.per_module, s.expert_sharing),
                         (spec_pb.EXPERT_COEFFICIENTS, spec_pb.LORA_PRODUCT, 0, False,
                          spec_pb.ALLOWED))
        self.assertFalse(s.HasField("schema"))  # experts may differ in rank: no one schema
        # Accepted: LORA_PRODUCT_SVD with its rank, per_module, fp32 transport.
        s = self.create(coef_spec("coef-svd", decoder=spec_pb.LORA_PRODUCT_SVD, svd_rank=2,
                                  per_module=True,
                                  transport_dtype=spec_pb.DTYPE_F32)).spec
        self.assertEqual((s.decoder, s.svd_rank, s.per_module),
                         (spec_pb.LORA_PRODUCT_SVD, 2, True))
        s = self.create(coef_spec("coef-linear", decoder=spec_pb.LINEAR_AB)).spec
        self.assertEqual(s.decoder, spec_pb.LINEAR_AB)
        # Refused, naming the field.
        schema = spec_pb.AdapterSchema(tensors=[spec_pb.TensorSpec(
            name="m.lora_A.weight", dtype=spec_pb.DTYPE_F32, shape=[2, 4])])
        for i, (field, kw) in enumerate([
                ("expert_sharing", dict(expert_sharing=spec_pb.FORBIDDEN)),
                ("decoder", dict(decoder=spec_pb.COEFFICIENT_DECODER_UNSPECIFIED)),
                ("svd_rank", dict(decoder=spec_pb.LORA_PRODUCT_SVD)),
                ("svd_rank", dict(decoder=spec_pb.LORA_PRODUCT_SVD, svd_rank=-1)),
                ("svd_rank", dict(svd_rank=3)),
                ("svd_rank", dict(decoder=spec_pb.LINEAR_AB, svd_rank=3)),
                ("transport_dtype", dict(transport_dtype=spec_pb.DTYPE_F16)),
                ("schema", dict(schema=schema)),
                ("template_blob_id", dict(template_blob_id="a" * 64)),
                ("decoder", dict(space=spec_pb.WEIGHTS)),
                ("per_module", dict(space=spec_pb.WEIGHTS, decoder=0, per_module=True)),
                ("svd_rank", dict(space=spec_pb.WEIGHTS, decoder=0, svd_rank=2)),
                # SPEC 4.4: local training only in WEIGHTS.
                ("local_training", dict(local_training=spec_pb.LocalTraining(
                    every_k=1, steps=5, learning_rate=0.01, batch=4)))]):
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=coef_spec("coef-bad-%d" % i, **kw)),
                         says=field)
        # expert_sharing FORBIDDEN is fine in WEIGHTS.
        s = self.create(ct.spec("coef-weights-forbidden",
                                expert_sharing=spec_pb.FORBIDDEN)).spec
        self.assertEqual((s.space, s.expert_sharing), (spec_pb.WEIGHTS, spec_pb.FORBIDDEN))
        # Local training in WEIGHTS is accepted and echoed as sent.
        lt = spec_pb.LocalTraining(every_k=2, steps=5, learning_rate=0.01, batch=4)
        s = self.create(ct.spec("coef-weights-training", local_training=lt)).spec
        self.assertEqual(s.local_training, lt)
        # SPEC 12: DP local training, echoed as sent; its settings out of range are refused.
        lt_dp = spec_pb.LocalTraining(every_k=2, steps=5, learning_rate=0.01, batch=4,
                                      dp_epsilon=4, dp_delta=1e-5, dp_clip_norm=0.5)
        s = self.create(ct.spec("coef-weights-dp-training", local_training=lt_dp)).spec
        self.assertEqual(s.local_training, lt_dp)
        for i, (says, kw) in enumerate([
                ("dp_epsilon", dict(dp_epsilon=-1, dp_delta=1e-5)),
                ("dp_epsilon", dict(dp_epsilon=float("inf"), dp_delta=1e-5)),
                ("dp_delta", dict(dp_epsilon=4, dp_delta=0)),
                ("dp_delta", dict(dp_epsilon=4, dp_delta=1)),
                ("dp_delta", dict(dp_delta=1e-5)),
                ("dp_clip_norm", dict(dp_epsilon=4, dp_delta=1e-5, dp_clip_norm=-0.5)),
                ("dp_clip_norm", dict(dp_epsilon=4, dp_delta=1e-5, dp_clip_norm=float("nan")))]):
            bad = spec_pb.LocalTraining(every_k=2, steps=5, learning_rate=0.01, batch=4, **kw)
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=ct.spec("coef-dp-bad-%d" % i,
                                                            local_training=bad)),
                         says=says)

    def test_a_coefficient_swarm_from_spec_to_export(self):
        name = "coef-life"
        # Three experts of one module (in 4, out 3): ranks 2, 3, 1 and scalings
        # lora_alpha / r = 2, 4, 1. firm-a joins with two, firm-b with one.
        e1, a1, b1 = wire.lora_expert(2, 0.1)
        e2, a2, b2 = wire.lora_expert(3, 0.2)
        e3, a3, b3 = wire.lora_expert(1, 0.3)
        id1, id2, id3 = (wire.sha256_hex(e) for e in (e1, e2, e3))
        c1, c2, c3 = config(2, 4), config(3, 12), config(1, 1)
        factors = {id1: (a1, b1, 2.0), id2: (a2, b2, 4.0), id3: (a3, b3, 1.0)}

        created = self.create(coef_spec(name, min_experts=3, hyperparameters=(
            spec_pb.SwarmHyperparameters(pool_size=4, max_iterations=2, seed=11))))
        self.assertEqual(created.state, pb.PENDING_EXPERTS)
        self.upload(e1, FIRM_A)
        self.upload(e2, FIRM_A)
        self.upload(e3, FIRM_B)

        # Join refusals: expert_adapter_configs parallel to expert_blob_ids, each a LoRA
        # config of at most 64 KiB, adapter_config_json empty or the first's; the field and
        # index named; nothing changes.
        def refuse(says, **kw):
            req = dict(swarm=name, expert_blob_ids=[id1, id2], capacity=2)
            req.update(kw)
            self.refused(Code.INVALID_ARGUMENT, self.agent.Join, pb.JoinRequest(**req), FIRM_A,
                         says=says)

        refuse("expert_adapter_configs", expert_adapter_configs=[c1])
        refuse("expert_adapter_configs", expert_adapter_configs=[c1, c2, c3])
        refuse("expert_adapter_configs[1]", expert_adapter_configs=[c1, "{not json"])
        refuse("expert_adapter_configs[0]", expert_adapter_configs=[
            '{"peft_type": "LORA", "pad": "%s"}' % ("p" * (64 << 10)), c2])
        refuse("expert_adapter_configs[1]", expert_adapter_configs=[c1, config(3, 12, "big")])
        refuse("adapter_config_json", expert_adapter_configs=[c1, c2], adapter_config_json=c2)
        # One config for both: the rank-3 expert does not have its r = 2.
        refuse("r = 2", adapter_config_json=c1)
        st = self.status(name)
        self.assertEqual(st.experts_joined, 0)
        # The space shows from creation on; its dimension once the pool exists.
        self.assert_status_space(st, spec_pb.LORA_PRODUCT, 0, False, 0)

        # firm-a joins with each expert's own config (and the first in the old field, as a
        # client that also talks to older servers would); the swarm has no one schema.
        j = self.join(name, [id1, id2], FIRM_A, capacity=2, config=c1,
                      expert_adapter_configs=[c1, c2])
        self.assertEqual((j.state, j.experts_joined, j.min_experts),
                         (pb.PENDING_EXPERTS, 2, 3))
        self.assertFalse(j.HasField("schema"))
        self.assertEqual(j.transport_dtype, spec_pb.DTYPE_UNSPECIFIED)
        self.assertEqual(list(j.assigned_particle_ids), [])
        wait = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_A)
        self.assertEqual(wait.status, pb.GetAssignmentResponse.WAIT)
        self.assertGreater(wait.retry_after_ms, 0)
        # firm-b joins like an older client: one config, applied to its expert.
        j = self.join(name, [id3], FIRM_B, capacity=2, config=c3)
        self.assertEqual((j.state, j.experts_joined), (pb.RUNNING, 3))
        self.assert_status_space(self.status(name), spec_pb.LORA_PRODUCT, 0, False, 3)
        self.assertTrue(j.assigned_particle_ids)
        # A re-join (no configs this time) changes nothing: the experts keep their configs.
        again = self.join(name, [id1, id2], FIRM_A, capacity=2, config="")
        self.assertEqual((again.state, again.experts_joined), (pb.RUNNING, 3))

        # GetAssignment: the space, every expert in pool order (ascending blob id) with its
        # own config, and each particle's alpha with its canonical blob id.
        pool_order = sorted([id1, id2, id3])
        want_configs = {id1: c1, id2: c2, id3: c3}
        owner, initial, partner = {}, {}, {}
        for who in (FIRM_A, FIRM_B):
            asg = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), who)
            self.assertEqual((asg.status, asg.swarm_state),
                             (pb.GetAssignmentResponse.ASSIGNED, pb.RUNNING))
            self.assertEqual((asg.space, asg.decoder, asg.svd_rank, asg.per_module),
                             (spec_pb.EXPERT_COEFFICIENTS, spec_pb.LORA_PRODUCT, 0, False))
            self.assertEqual(list(asg.expert_blob_ids), pool_order)
            self.assertEqual(dict(zip(asg.expert_blob_ids, asg.expert_adapter_configs)),
                             want_configs)
            self.assertEqual(len(asg.expert_adapter_configs), 3)
            self.assertEqual([p.particle_id for p in asg.particles],
                             sorted(p.particle_id for p in asg.particles))
            for p in asg.particles:
                owner[p.particle_id] = who
                alpha = list(p.initial_alpha)
                self.assertEqual(len(alpha), 3)
                self.assertTrue(all(math.isfinite(x) for x in alpha))
                self.assertEqual(p.initial_position_blob_id, alpha_id(alpha))
                self.assertEqual(p.last_reported_iteration, -1)
                initial[p.particle_id] = alpha
                v = p.initial_velocity
                if v.WhichOneof("kind") == "partner_blob_id":
                    self.assertEqual(len(v.partner_alpha), 3)
                    self.assertEqual(v.partner_blob_id, alpha_id(v.partner_alpha))
                    partner[p.particle_id] = v.partner_blob_id
                else:
                    self.assertEqual(list(v.partner_alpha), [])
        self.assertEqual(sorted(owner), [0, 1, 2, 3])
        # Each agent hosts its own experts: the one-hot alpha of each expert's pool index.
        for blob, who in ((id1, FIRM_A), (id2, FIRM_A), (id3, FIRM_B)):
            hot = one_hot(3, pool_order.index(blob))
            self.assertIn(hot, [initial[i] for i in owner if owner[i] == who], blob)
        # RANDOM_PEER partners are positions of the pool.
        self.assertTrue(partner)
        ids = {alpha_id(a) for a in initial.values()}
        self.assertTrue(set(partner.values()) <= ids)
        # Every agent receives every expert: firm-b downloads firm-a's.
        for blob, data in ((id1, e1), (id2, e2)):
            self.assertEqual(b"".join(m.chunk.data for m in self.download(blob, who=FIRM_B)),
                             data)

        # Report refusals (position_alpha): wrong length, non-finite, missing, and a blob id
        # that is not alpha's canonical blob (an expert's weights); nothing is recorded.
        p0 = min(i for i in owner if owner[i] == FIRM_A)
        x0 = initial[p0]
        for says, alpha, blob in (
                ("dimension 3", [1.0], ""),
                ("dimension 3", [1.0, 0.0, 0.0, 0.0], ""),
                ("alpha[1]", [1.0, math.nan, 0.0], ""),
                ("alpha[0]", [math.inf, 0.0, 0.0], ""),
                ("position_alpha", [], alpha_id(x0)),
                ("position_alpha", [], id1),
                ("position_blob_id", x0, id1),
                ("position_blob_id", x0, alpha_id([0.5, 0.5, 0.0]))):
            self.refused(Code.INVALID_ARGUMENT, self.agent.Report, pb.ReportRequest(
                swarm=name, particle_id=p0, iteration=0, position_blob_id=blob,
                position_alpha=alpha, scores={"acc": 0.5}), FIRM_A, says=says)
        self.assertEqual(self.status(name).global_best.particle_id, -1)

        # Iteration 0: alpha inline, the blob id empty or canonical; never an upload. A
        # retry is compared by alpha's canonical id, with or without the id given.
        best = (-1.0, None)  # (utility, alpha) of g as this client computes it
        for i in sorted(owner):
            blob = alpha_id(initial[i]) if i % 2 else ""
            r = self.report_alpha(name, i, 0, initial[i], owner[i], blob_id=blob)
            self.assertTrue(r.accepted and not r.duplicate and not r.upload_requested)
            self.assertAlmostEqual(r.utility, score(initial[i]))
            best = max(best, (r.utility, initial[i]))
        dup = self.report_alpha(name, p0, 0, x0, FIRM_A, blob_id=alpha_id(x0))
        self.assertTrue(dup.accepted and dup.duplicate and not dup.upload_requested)
        self.refused(Code.ALREADY_EXISTS, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=p0, iteration=0, position_alpha=[0.3, 0.3, 0.4],
            scores={"acc": score(x0)}), FIRM_A)
        st = self.status(name)
        self.assertEqual(st.global_best.blob_id, alpha_id(best[1]))
        # Status carries alpha wherever blob_id is, and the blob id derives from it.
        self.assertEqual(list(st.global_best.alpha), best[1])
        self.assertTrue(st.global_worst.blob_id)
        self.assert_ref(st.global_best, "status g")
        self.assert_ref(st.global_worst, "status g_w")

        # Iterations 1 and 2: targets carry g / g_w / p as alpha alone (no blob ids); agents
        # move alpha and report it inline with an empty position_blob_id.
        x, k = dict(initial), 1
        while k <= 2:
            moved = {}
            st = self.status(name)  # no report of round k yet: g and g_w are the round's
            for i in sorted(owner):
                t = self.targets(name, i, k, owner[i])
                self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, k))
                ids = [self.assert_target_ref(ref, "%s of particle %d at %d" % (what, i, k))
                       for ref, what in ((t.global_best, "g"), (t.global_worst, "g_w"),
                                         (t.personal_best, "p"))]
                # The ids this client derives are the ones the admin answers name.
                self.assertEqual(ids[:2], [st.global_best.blob_id, st.global_worst.blob_id])
                self.assertEqual((t.global_best.particle_id, t.global_best.iteration),
                                 (st.global_best.particle_id, st.global_best.iteration))
                self.assertEqual(self.targets(name, i, k, owner[i]), t)  # safe to repeat
                g, gw = list(t.global_best.alpha), list(t.global_worst.alpha)
                c = t.coefficients
                # The move toward g and away from g_w, plus a pull toward what this
                # agent's evaluations favour (the client's own business: the server cannot
                # tell), so g ends up mixing every expert.
                moved[i] = [wire.f32(xi + c.step * (c.c * (gi - xi) - c.d * (wi - xi))
                                     + 0.5 * (ti - xi))
                            for xi, gi, wi, ti in zip(x[i], g, gw, TARGET)]
            for i in sorted(owner):
                r = self.report_alpha(name, i, k, moved[i], owner[i])
                self.assertTrue(r.accepted and not r.duplicate and not r.upload_requested)
                best = max(best, (r.utility, moved[i]))
                # A restarted agent re-sends it (same short key, same payload): a duplicate,
                # recognised by alpha; a different alpha under that key is not.
                again = self.report_alpha(name, i, k, moved[i], owner[i])
                self.assertTrue(again.accepted and again.duplicate, i)
                self.assertEqual(again.utility, r.utility)
                self.refused(Code.ALREADY_EXISTS, self.agent.Report, pb.ReportRequest(
                    swarm=name, particle_id=i, iteration=k, idempotency_key="%d:%d" % (i, k),
                    position_alpha=[wire.f32(a + 0.25) for a in moved[i]],
                    scores={"acc": r.utility}), owner[i])
            x, k = moved, k + 1

        st = self.status(name)
        self.assertEqual((st.state, st.termination_reason), (pb.FINISHED, "max_iterations"))
        self.assertEqual(st.global_best.blob_id, alpha_id(best[1]))
        self.assertEqual(list(st.global_best.alpha), best[1])
        self.assert_ref(st.global_best, "final status g")
        self.assert_ref(st.global_worst, "final status g_w")
        self.assertAlmostEqual(st.global_best.utility, best[0])
        t = self.targets(name, p0, 3, FIRM_A)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.DONE, pb.FINISHED))
        done = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_A)
        self.assertEqual(done.status, pb.GetAssignmentResponse.DONE)

        # ExportBest: g decoded into a PEFT directory, each file verified by its sha256;
        # position_blob_id is g's canonical alpha blob on every message.
        files, positions, utilities = self.export_best(name)
        self.assertEqual(list(files), ["adapter_model.safetensors", "adapter_config.json"])
        self.assertEqual(positions, {alpha_id(best[1])})
        self.assertEqual(utilities, {st.global_best.utility})

        # LORA_PRODUCT: rank sum r_j, and scaling * B A = sum_j alpha_j s_j B_j A_j with each
        # expert's own s_j (2, 4 and 1 here: one config for all would get two of them wrong),
        # for a g in which every expert counts.
        self.assertTrue(all(abs(w) > 0.05 for w in best[1]), best)
        cfg = json.loads(bytes(files["adapter_config.json"]))
        self.assertEqual(cfg["r"], 2 + 3 + 1)
        self.assertEqual(cfg["base_model_name_or_path"], "tiny")
        scaling = cfg["lora_alpha"] / cfg["r"]
        tensors = wire.read_safetensors(bytes(files["adapter_model.safetensors"]))
        _, a_shape, a_vals = tensors["base_model.model.m.lora_A.weight"]
        _, b_shape, b_vals = tensors["base_model.model.m.lora_B.weight"]
        self.assertEqual((a_shape, b_shape), ((6, 4), (3, 6)))
        a = [a_vals[r * 4:(r + 1) * 4] for r in range(6)]
        b = [b_vals[o * 6:(o + 1) * 6] for o in range(3)]
        got = wire.matmul(b, a)
        want = [[0.0] * 4 for _ in range(3)]
        for j, blob in enumerate(pool_order):
            aj, bj, sj = factors[blob]
            prod = wire.matmul(bj, aj)
            for o in range(3):
                for i in range(4):
                    want[o][i] += best[1][j] * sj * prod[o][i]
        tolerance = 1e-5 * max(abs(w) for row in want for w in row)
        for o in range(3):
            for i in range(4):
                self.assertAlmostEqual(scaling * got[o][i], want[o][i], delta=tolerance,
                                       msg="delta W[%d][%d]" % (o, i))

    def test_svd_decoder_and_per_module_alpha(self):
        """LORA_PRODUCT_SVD with per_module: alpha has one entry per expert and module, and
        the export has rank svd_rank."""
        name = "coef-svd-walk"
        modules = ["m", "n"]
        e1, e2 = wire.lora_modules(2, 0.1, modules), wire.lora_modules(3, 0.2, modules)
        id1, id2 = wire.sha256_hex(e1), wire.sha256_hex(e2)
        c1, c2 = (config(r, 2 * r).replace('["m"]', '["m", "n"]') for r in (2, 3))
        self.create(coef_spec(name, decoder=spec_pb.LORA_PRODUCT_SVD, svd_rank=2,
                              per_module=True, hyperparameters=spec_pb.SwarmHyperparameters(
                                  pool_size=2, max_iterations=1, seed=5)))
        self.upload(e1, FIRM_A)
        self.upload(e2, FIRM_B)
        self.join(name, [id1], FIRM_A, config="", expert_adapter_configs=[c1])
        self.assertEqual(self.join(name, [id2], FIRM_B, config="",
                                   expert_adapter_configs=[c2]).state, pb.RUNNING)
        owner, alpha = {}, {}
        for who in (FIRM_A, FIRM_B):
            asg = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), who)
            self.assertEqual((asg.decoder, asg.svd_rank, asg.per_module),
                             (spec_pb.LORA_PRODUCT_SVD, 2, True))
            self.assertEqual(dict(zip(asg.expert_blob_ids, asg.expert_adapter_configs)),
                             {id1: c1, id2: c2})
            for p in asg.particles:
                self.assertEqual(len(p.initial_alpha), 2 * 2)  # experts x modules
                self.assertEqual(p.initial_position_blob_id, alpha_id(p.initial_alpha))
                owner[p.particle_id], alpha[p.particle_id] = who, list(p.initial_alpha)
        self.refused(Code.INVALID_ARGUMENT, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=0, position_alpha=alpha[0][:2],
            scores={"acc": 0.5}), owner[0], says="dimension 4")
        for i in owner:
            self.report_alpha(name, i, 0, alpha[i], owner[i], acc=0.2 + 0.1 * i)
        best = (-1.0, None)
        for i in owner:
            t = self.targets(name, i, 1, owner[i])
            self.assertEqual(t.status, pb.GetTargetsResponse.READY)
            for ref in (t.global_best, t.global_worst, t.personal_best):
                self.assert_target_ref(ref, "particle %d" % i, dimension=4)
            moved = [wire.f32(0.5 * (x + g)) for x, g in zip(alpha[i], t.global_best.alpha)]
            r = self.report_alpha(name, i, 1, moved, owner[i], acc=0.5 + 0.1 * i)
            best = max(best, (r.utility, moved))
        st = self.status(name)
        self.assertEqual(st.state, pb.FINISHED)
        self.assertEqual(st.global_best.blob_id, alpha_id(best[1]))
        self.assert_status_space(st, spec_pb.LORA_PRODUCT_SVD, 2, True, 2 * 2)
        self.assertEqual(list(st.global_best.alpha), best[1])
        self.assertEqual(st.global_best.blob_id, alpha_id(st.global_best.alpha))
        self.assertEqual(len(st.global_worst.alpha), 4)
        self.assertEqual(st.global_worst.blob_id, alpha_id(st.global_worst.alpha))
        files, positions, _ = self.export_best(name)
        self.assertEqual(positions, {st.global_best.blob_id})
        self.assertEqual(json.loads(bytes(files["adapter_config.json"]))["r"], 2)
        tensors = wire.read_safetensors(bytes(files["adapter_model.safetensors"]))
        self.assertEqual({n: t[1] for n, t in tensors.items()}, {
            "base_model.model.m.lora_A.weight": (2, 4), "base_model.model.m.lora_B.weight": (3, 2),
            "base_model.model.n.lora_A.weight": (2, 4), "base_model.model.n.lora_B.weight": (3, 2)})


if __name__ == "__main__":
    unittest.main(verbosity=2)
