"""The documented wire contract of AgentService and AdminService, field by field.

An independent client: stubs generated from proto/*.proto at test time, Debian's
python3-grpcio, no WXP code. Each test reads like the proto comment it checks: success
paths fill every documented response field, and every documented refusal comes with its
exact code and a message that says what is wrong.

Run by tests/contract/contract_test.sh (bazel test //tests:contract_test), which sets
WXP_SERVER, WXP_PROTO_ROOT and WXP_CONTRACT_TMP.
"""

import hashlib
import math
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

import grpc  # noqa: E402

TMP = os.environ.get("WXP_CONTRACT_TMP", "/tmp")
pb, pb_grpc = wire.generate_stubs(os.environ["WXP_PROTO_ROOT"], os.path.join(TMP, "stubs"))
import proto.swarm_spec_pb2 as spec_pb  # noqa: E402  (generated above)

Code = grpc.StatusCode
ADMIN = ("ops", "admin")
FIRM_A = ("firm-a", "agent")
FIRM_B = ("firm-b", "agent")
CONFIG = ('{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["m"], '
          '"base_model_name_or_path": "tiny"}')


def md(who):
    return (("x-wxp-identity", who[0]), ("x-wxp-role", who[1]))


def ld(field, payload):
    """A length-delimited protobuf field, written by hand (for bytes protobuf won't send)."""
    return bytes([field << 3 | 2, len(payload)]) + payload


def spec(name, **kw):
    """A small valid spec: one utility component "acc" in [0, 1], two experts, pool of 2."""
    s = spec_pb.SwarmSpec(
        name=name, base_model="tiny",
        utility=[spec_pb.UtilityComponent(name="acc", weight=1, min_value=0, max_value=1)],
        min_experts=2, hyperparameters=spec_pb.SwarmHyperparameters(pool_size=2,
                                                                    max_iterations=3))
    for k, v in kw.items():
        if hasattr(v, "DESCRIPTOR"):  # a message field
            getattr(s, k).CopyFrom(v)
        else:
            setattr(s, k, v)
    return s


class WireTest(unittest.TestCase):
    """One wxp-server per test class; every test uses its own swarm names."""

    config_text = ""

    @classmethod
    def setUpClass(cls):
        cls.server = wire.Server(os.environ["WXP_SERVER"], TMP, cls.config_text)
        cls.channel = cls.server.channel()
        cls.agent = pb_grpc.AgentServiceStub(cls.channel)
        cls.admin = pb_grpc.AdminServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()

    # ---- calls ----

    def call(self, rpc, request, who=ADMIN):
        return rpc(request, metadata=md(who), timeout=30)

    def refused(self, code, rpc, request, who=ADMIN, says=None):
        """Calls `rpc` expecting refusal `code` with a non-empty message; returns it."""
        with self.assertRaises(grpc.RpcError) as err:
            result = rpc(request, metadata=md(who), timeout=30)
            if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
                list(result)  # a server stream fails when read
        self.assertEqual(err.exception.code(), code, err.exception.details())
        details = err.exception.details()
        self.assertTrue(details, "refused with %s but no message" % code)
        if says is not None:
            self.assertIn(says, details)
        return details

    def upload(self, data, who=FIRM_A, chunk=1 << 20, offset=0, total=None, blob_id=None,
               swarm="", extra=()):
        reqs = [pb.UploadBlobRequest(header=pb.UploadHeader(
            blob_id=blob_id or wire.sha256_hex(data),
            total_size=len(data) if total is None else total, offset=offset, swarm=swarm))]
        for off in range(offset, len(data), chunk):
            reqs.append(pb.UploadBlobRequest(chunk=pb.BlobChunk(offset=off,
                                                                data=data[off:off + chunk])))
        reqs.extend(extra)
        return self.agent.UploadBlob(iter(reqs), metadata=md(who), timeout=60)

    def download(self, blob_id, offset=0, who=FIRM_B):
        msgs = list(self.agent.DownloadBlob(pb.DownloadBlobRequest(blob_id=blob_id,
                                                                   offset=offset),
                                            metadata=md(who), timeout=60))
        return msgs

    def create(self, s, who=ADMIN):
        return self.call(self.admin.CreateSwarm, pb.CreateSwarmRequest(spec=s), who)

    def join(self, swarm, ids, who, capacity=1, config=CONFIG, **kw):
        return self.call(self.agent.Join, pb.JoinRequest(
            swarm=swarm, expert_blob_ids=ids, capacity=capacity, adapter_config_json=config,
            **kw), who)

    def report(self, swarm, particle, iteration, blob, acc, who=FIRM_A, **kw):
        scores = {} if acc is None else {"acc": acc}
        return self.call(self.agent.Report, pb.ReportRequest(
            swarm=swarm, particle_id=particle, iteration=iteration, position_blob_id=blob,
            scores=scores, evaluation_seconds=1.5, **kw), who)

    def status(self, swarm):
        return self.call(self.admin.GetSwarmStatus, pb.GetSwarmStatusRequest(swarm=swarm))

    def export_best(self, swarm):
        """ExportBest read to the end: each file's chunks in order, and at its last chunk its
        size and sha256 checked. Returns (files by path as bytes, in stream order; the set of
        position_blob_ids and the set of utilities the messages carried)."""
        files, positions, utilities = {}, set(), set()
        for msg in self.admin.ExportBest(pb.ExportBestRequest(swarm=swarm), metadata=md(ADMIN),
                                         timeout=60):
            data = files.setdefault(msg.path, bytearray())
            self.assertEqual(msg.chunk.offset, len(data))
            data.extend(msg.chunk.data)
            positions.add(msg.position_blob_id)
            utilities.add(msg.utility)
            if msg.sha256:
                self.assertEqual(len(data), msg.file_size)
                self.assertEqual(hashlib.sha256(data).hexdigest(), msg.sha256)
        return {path: bytes(data) for path, data in files.items()}, positions, utilities

    def running_swarm(self, name):
        """A swarm with two experts joined (firm-a: particle 0, firm-b: particle 1)."""
        self.create(spec(name))
        a, b = wire.adapter(0.1), wire.adapter(0.2)
        self.upload(a, FIRM_A)
        self.upload(b, FIRM_B)
        self.join(name, [wire.sha256_hex(a)], FIRM_A)
        joined = self.join(name, [wire.sha256_hex(b)], FIRM_B)
        self.assertEqual(joined.state, pb.RUNNING)
        return wire.sha256_hex(a), wire.sha256_hex(b)

    def hold_upload(self, stub, data, gate):
        """Starts an upload of `data` on `stub` that sends 8 bytes, then waits for `gate`;
        returns its future once the server holds those bytes (it is inside the call then, so
        the call holds a stream slot)."""

        def gen():
            yield pb.UploadBlobRequest(header=pb.UploadHeader(
                blob_id=wire.sha256_hex(data), total_size=len(data)))
            yield pb.UploadBlobRequest(chunk=pb.BlobChunk(offset=0, data=data[:8]))
            gate.wait(60)
            yield pb.UploadBlobRequest(chunk=pb.BlobChunk(offset=8, data=data[8:]))

        future = stub.UploadBlob.future(gen(), metadata=md(FIRM_A), timeout=120)
        deadline = time.monotonic() + 30
        while self.call(self.agent.GetUploadOffset, pb.GetUploadOffsetRequest(
                blob_id=wire.sha256_hex(data)), FIRM_A).committed_bytes < 8:
            self.assertLess(time.monotonic(), deadline, "upload never started")
        return future


class SwarmLifeTest(WireTest):
    """One swarm from creation to export, every documented response field on the way."""

    def test_a_swarm_from_spec_to_export(self):
        name = "life"
        a_bytes, b_bytes = wire.adapter(0.1), wire.adapter(0.2)
        a, b = wire.sha256_hex(a_bytes), wire.sha256_hex(b_bytes)

        # CreateSwarm: the resolved spec, every default filled in, PENDING_EXPERTS.
        created = self.create(spec(name, description="contract walk"))
        self.assertEqual(created.state, pb.PENDING_EXPERTS)
        h = created.spec.hyperparameters
        self.assertTrue(h.HasField("seed"))
        for field, value in (("inertia", 0.2), ("cognitive", 0.3), ("social", 0.4),
                             ("repel", 0.05), ("step_length", 0.5), ("step_decay", 0.95),
                             ("min_step_length", 0.1), ("patience", 5),
                             ("restart_patience", 3), ("restart_cooldown", 3)):
            self.assertTrue(h.HasField(field), field)
            self.assertAlmostEqual(getattr(h, field), value, msg=field)
        self.assertTrue(h.repel_enabled and h.weight_randomness)
        self.assertEqual(h.max_iterations, 3)
        self.assertEqual(h.initial_velocity, spec_pb.RANDOM_PEER)
        self.assertEqual(created.spec.mode, spec_pb.SYNC)
        self.assertEqual(created.spec.upload_policy, spec_pb.ON_DEMAND)
        self.assertEqual(created.spec.quorum, 0.5)
        self.assertEqual(created.spec.round_deadline_seconds, 600)
        self.assertEqual(created.spec.utility[0].direction, spec_pb.UtilityComponent.MAXIMIZE)
        self.assertEqual((created.spec.space, created.spec.expert_sharing),
                         (spec_pb.WEIGHTS, spec_pb.ALLOWED))
        self.assertEqual((created.spec.decoder, created.spec.svd_rank, created.spec.per_module),
                         (spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, 0, False))

        # GetSwarmStatus before the pool exists: every documented field, g / g_w "none".
        st = self.status(name)
        self.assertEqual((st.name, st.state, st.termination_reason, st.iteration),
                         (name, pb.PENDING_EXPERTS, "", 0))
        self.assertEqual((st.particles, st.particles_live, st.particles_stale), (0, 0, 0))
        self.assertEqual((st.experts_joined, st.min_experts, st.agents_online), (0, 2, 0))
        self.assertEqual(st.global_best.particle_id, -1)
        self.assertEqual(st.global_worst.particle_id, -1)
        self.assertEqual(st.step_length, 0.5)
        self.assertTrue(st.HasField("created_time") and st.created_time.seconds > 0)
        self.assertFalse(st.HasField("last_round_time"))
        self.assertEqual((st.utility_weight_version, st.mode), (1, spec_pb.SYNC))
        # The particle space, resolved: WEIGHTS, no decoder, no coefficients.
        self.assertEqual((st.space, st.decoder, st.svd_rank, st.per_module, st.expert_sharing,
                          st.coefficient_dimension),
                         (spec_pb.WEIGHTS, spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, 0, False,
                          spec_pb.ALLOWED, 0))

        # UploadBlob in chunks; again: already_present; GetUploadOffset: complete.
        up = self.upload(a_bytes, FIRM_A, chunk=40)
        self.assertEqual((up.blob_id, up.committed_bytes, up.already_present),
                         (a, len(a_bytes), False))
        again = self.upload(a_bytes, FIRM_A)
        self.assertEqual((again.committed_bytes, again.already_present), (len(a_bytes), True))
        off = self.call(self.agent.GetUploadOffset, pb.GetUploadOffsetRequest(blob_id=a),
                        FIRM_A)
        self.assertEqual((off.committed_bytes, off.complete), (len(a_bytes), True))
        self.upload(b_bytes, FIRM_B)

        # DownloadBlob: contiguous chunks, total_size on each, from an offset too.
        msgs = self.download(a)
        self.assertEqual(b"".join(m.chunk.data for m in msgs), a_bytes)
        self.assertTrue(all(m.total_size == len(a_bytes) for m in msgs))
        tail = self.download(a, offset=10)
        self.assertEqual(tail[0].chunk.offset, 10)
        self.assertEqual(b"".join(m.chunk.data for m in tail), a_bytes[10:])

        # Join (pending): the swarm as the agent needs to know it.
        j = self.join(name, [a], FIRM_A, capacity=1, agent_version="contract 1.0")
        self.assertEqual((j.state, j.experts_joined, j.min_experts), (pb.PENDING_EXPERTS, 1, 2))
        self.assertEqual(len(j.schema.tensors), 2)
        self.assertEqual(j.schema.tensors[0].name, "m.lora_A.weight")
        self.assertEqual(list(j.schema.tensors[0].shape), [2, 4])
        self.assertEqual(j.schema.tensors[0].dtype, spec_pb.DTYPE_F32)
        self.assertRegex(j.schema.fingerprint, "^[0-9a-f]{64}$")
        self.assertEqual(j.transport_dtype, spec_pb.DTYPE_UNSPECIFIED)
        self.assertEqual(list(j.assigned_particle_ids), [])
        st = self.status(name)
        self.assertEqual((st.experts_joined, st.agents_online), (1, 1))

        wait = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_A)
        self.assertEqual(wait.status, pb.GetAssignmentResponse.WAIT)
        self.assertGreater(wait.retry_after_ms, 0)
        self.assertEqual(wait.swarm_state, pb.PENDING_EXPERTS)
        self.assertTrue(wait.hyperparameters.HasField("seed"))
        self.assertEqual((wait.mode, wait.upload_policy), (spec_pb.SYNC, spec_pb.ON_DEMAND))
        self.assertEqual(wait.pool_size, 0)  # no pool yet
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(swarm=name, particle_id=0,
                                                                  iteration=1), FIRM_A)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.WAIT,
                                                     pb.PENDING_EXPERTS))
        self.assertGreater(t.retry_after_ms, 0)

        # The second expert builds the pool; both joins answer their particle ids.
        jb = self.join(name, [b], FIRM_B)
        self.assertEqual((jb.state, list(jb.assigned_particle_ids)), (pb.RUNNING, [1]))
        ja = self.join(name, [a], FIRM_A)  # idempotent re-join after the pool exists
        self.assertEqual((ja.state, ja.experts_joined, list(ja.assigned_particle_ids)),
                         (pb.RUNNING, 2, [0]))

        asg = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_A)
        self.assertEqual((asg.status, asg.swarm_state), (pb.GetAssignmentResponse.ASSIGNED,
                                                         pb.RUNNING))
        self.assertEqual(asg.pool_size, 2)  # the pool exists: its two particles
        self.assertEqual(len(asg.particles), 1)
        p0 = asg.particles[0]
        self.assertEqual((p0.particle_id, p0.initial_position_blob_id,
                          p0.last_reported_iteration), (0, a, -1))
        self.assertEqual(p0.initial_velocity.WhichOneof("kind"), "partner_blob_id")
        self.assertEqual(p0.initial_velocity.partner_blob_id, b)

        # Initial evaluation: targets wait until the pool is ranked.
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(swarm=name, particle_id=0,
                                                                  iteration=1), FIRM_A)
        self.assertEqual(t.status, pb.GetTargetsResponse.WAIT)
        r = self.report(name, 0, 0, a, 0.5, idempotency_key="0:0:" + a)
        self.assertTrue(r.accepted and not r.duplicate)
        self.assertEqual(r.utility, 0.5)
        self.assertTrue(r.new_personal_best and r.new_global_best and r.new_global_worst)
        self.assertFalse(r.upload_requested)  # the server holds initial positions
        self.assertEqual(r.global_best_utility, 0.5)
        dup = self.report(name, 0, 0, a, 0.5, idempotency_key="another retry token")
        self.assertTrue(dup.accepted and dup.duplicate)
        self.assertEqual(dup.utility, 0.5)
        self.assertTrue(dup.new_personal_best)
        self.refused(Code.ALREADY_EXISTS, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=0, position_blob_id=a, scores={"acc": 0.6}),
            FIRM_A, says="different payload")
        self.refused(Code.PERMISSION_DENIED, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=0, position_blob_id=a, scores={"acc": 0.5}),
            FIRM_B)
        r = self.report(name, 1, 0, b, 0.7, who=FIRM_B)
        self.assertTrue(r.new_global_best)
        self.assertEqual(r.global_best_utility, 0.7)

        st = self.status(name)
        self.assertEqual((st.state, st.iteration, st.particles), (pb.RUNNING, 0, 2))
        self.assertEqual((st.global_best.particle_id, st.global_best.iteration,
                          st.global_best.blob_id, st.global_best.utility), (1, 0, b, 0.7))
        self.assertEqual((st.global_worst.particle_id, st.global_worst.blob_id), (0, a))
        self.assertEqual((list(st.global_best.alpha), list(st.global_worst.alpha)), ([], []))
        self.assertEqual((st.space, st.coefficient_dimension), (spec_pb.WEIGHTS, 0))
        self.assertEqual((st.particles_live, st.particles_stale, st.agents_online), (2, 0, 2))
        self.assertTrue(st.HasField("last_round_time"))

        # Targets of iteration 1: normalised coefficients, g / g_w / p_i with blob ids.
        req = pb.GetTargetsRequest(swarm=name, particle_id=0, iteration=1)
        t = self.call(self.agent.GetTargets, req, FIRM_A)
        self.assertEqual((t.status, t.iteration, t.swarm_state, t.utility_weight_version),
                         (pb.GetTargetsResponse.READY, 1, pb.RUNNING, 1))
        c = t.coefficients
        self.assertAlmostEqual(c.a + c.b + c.c + c.d, 1.0, places=9)
        self.assertTrue(all(0 <= x <= 1 for x in (c.a, c.b, c.c, c.d)))
        self.assertEqual(c.step, 0.5)
        self.assertEqual((t.global_best.particle_id, t.global_best.blob_id), (1, b))
        self.assertEqual((t.global_worst.particle_id, t.global_worst.blob_id), (0, a))
        self.assertEqual(t.personal_best.particle_id, 0)
        self.assertEqual(t.personal_best.utility, 0.5)
        self.assertEqual(self.call(self.agent.GetTargets, req, FIRM_A), t)  # safe to repeat
        self.refused(Code.PERMISSION_DENIED, self.agent.GetTargets,
                     pb.GetTargetsRequest(swarm=name, particle_id=1, iteration=1), FIRM_A)
        self.refused(Code.NOT_FOUND, self.agent.GetTargets,
                     pb.GetTargetsRequest(swarm=name, particle_id=7, iteration=1), FIRM_A)
        self.refused(Code.INVALID_ARGUMENT, self.agent.GetTargets,
                     pb.GetTargetsRequest(swarm=name, particle_id=0, iteration=0), FIRM_A)
        t1 = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=1, iteration=1), FIRM_B)
        self.assertEqual(t1.status, pb.GetTargetsResponse.READY)
        # SYNC: the next round is not open yet.
        t2 = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=2), FIRM_A)
        self.assertEqual(t2.status, pb.GetTargetsResponse.WAIT)

        # Iteration 1: a new g and a new g_w, both asked for and uploaded with header.swarm.
        x1, y1 = wire.adapter(0.3), wire.adapter(0.4)
        r = self.report(name, 0, 1, wire.sha256_hex(x1), 0.9)
        self.assertTrue(r.new_global_best and r.new_personal_best and r.upload_requested)
        self.assertEqual(r.global_best_utility, 0.9)
        self.refused(Code.FAILED_PRECONDITION, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=2, position_blob_id=wire.sha256_hex(x1),
            scores={"acc": 0.9}), FIRM_A)
        self.refused(Code.UNAVAILABLE, self.admin.ExportBest,  # g's bytes not uploaded yet
                     pb.ExportBestRequest(swarm=name), says="not been uploaded")
        self.upload(x1, FIRM_A, swarm=name)
        dup = self.report(name, 0, 1, wire.sha256_hex(x1), 0.9)
        self.assertTrue(dup.duplicate and not dup.upload_requested)  # held now
        r = self.call(self.agent.Report, pb.ReportRequest(  # a name that is no component
            swarm=name, particle_id=1, iteration=1, position_blob_id=wire.sha256_hex(y1),
            scores={"acc": 0.1, "latency_ms": 1234}), FIRM_B)
        self.assertTrue(r.new_global_worst and r.upload_requested)
        self.assertEqual(r.utility, 0.1)  # ... is stored but does not count
        self.upload(y1, FIRM_B, swarm=name)

        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.blob_id, st.global_worst.blob_id),
                         (1, wire.sha256_hex(x1), wire.sha256_hex(y1)))
        self.assertAlmostEqual(st.step_length, 0.5 * 0.95)
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=2), FIRM_A)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 2))
        self.assertAlmostEqual(t.coefficients.step, 0.5 * 0.95)
        self.refused(Code.FAILED_PRECONDITION, self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=1), FIRM_A, says="stale")

        # Admin views.
        parts = self.call(self.admin.ListParticles, pb.ListParticlesRequest(swarm=name))
        self.assertEqual([p.particle_id for p in parts.particles], [0, 1])
        self.assertEqual([p.owner for p in parts.particles], ["firm-a", "firm-b"])
        self.assertEqual([p.iteration for p in parts.particles], [1, 1])
        self.assertEqual([p.utility for p in parts.particles], [0.9, 0.1])
        self.assertEqual([p.best_utility for p in parts.particles], [0.9, 0.7])
        self.assertTrue(all(p.HasField("last_report_time") for p in parts.particles))
        hist = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
        self.assertEqual([(e.iteration, e.utility_weight_version) for e in hist.entries],
                         [(0, 1), (1, 1)])
        e1 = hist.entries[1]
        self.assertEqual((e1.global_best_utility, e1.global_worst_utility, e1.reports),
                         (0.9, 0.1, 2))
        self.assertAlmostEqual(e1.mean_utility, 0.5)
        self.assertEqual(e1.step_length, 0.5)
        self.assertEqual(hist.entries[0].step_length, 0)
        self.assertTrue(e1.HasField("closed_time"))

        # Dynamic utility: a new version, re-read history, same spec order.
        w = self.call(self.admin.SetUtilityWeights, pb.SetUtilityWeightsRequest(
            swarm=name, weights={"acc": 2}))
        self.assertEqual(w.version, 2)
        self.assertEqual([(c.name, c.weight, c.direction, c.min_value, c.max_value)
                          for c in w.components],
                         [("acc", 2, spec_pb.UtilityComponent.MAXIMIZE, 0, 1)])
        self.assertEqual(self.call(self.admin.GetUtilityWeights,
                                   pb.GetUtilityWeightsRequest(swarm=name)), w)
        hist = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
        self.assertEqual([(e.iteration, e.utility_weight_version) for e in hist.entries],
                         [(0, 1), (1, 1), (0, 2), (1, 2)])
        self.assertEqual(hist.entries[3].global_best_utility, 1.8)
        self.assertEqual(self.status(name).utility_weight_version, 2)

        # ExportBest: the PEFT directory, file by file, verified by sha256.
        files, positions, utilities = self.export_best(name)
        self.assertEqual(list(files), ["adapter_model.safetensors", "adapter_config.json"])
        self.assertEqual(bytes(files["adapter_model.safetensors"]), x1)
        self.assertEqual(positions, {wire.sha256_hex(x1)})  # WEIGHTS: g's blob, on every message
        self.assertEqual(bytes(files["adapter_config.json"]).decode(), CONFIG)
        self.assertEqual(utilities, {1.8})

        # Pause / resume / heartbeat / stop.
        p = self.call(self.admin.PauseSwarm, pb.SwarmControlRequest(swarm=name, reason="look"))
        self.assertEqual(p.state, pb.PAUSED)
        self.assertEqual((p.space, p.expert_sharing), (spec_pb.WEIGHTS, spec_pb.ALLOWED))
        self.assertEqual(self.call(self.admin.PauseSwarm,
                                   pb.SwarmControlRequest(swarm=name)).state, pb.PAUSED)
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=1, iteration=2), FIRM_B)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.WAIT, pb.PAUSED))
        self.assertEqual(self.call(self.admin.ResumeSwarm,
                                   pb.SwarmControlRequest(swarm=name)).state, pb.RUNNING)
        self.refused(Code.FAILED_PRECONDITION, self.admin.ResumeSwarm,
                     pb.SwarmControlRequest(swarm=name))
        hb = self.call(self.agent.Heartbeat, pb.HeartbeatRequest(swarm=name, particle_ids=[0]),
                       FIRM_A)
        self.assertEqual(hb.swarm_state, pb.RUNNING)
        self.assertLess(abs(hb.server_time.seconds - time.time()), 300)
        s = self.call(self.admin.StopSwarm, pb.SwarmControlRequest(swarm=name, reason="done"))
        self.assertEqual((s.state, s.termination_reason), (pb.STOPPED, "stopped"))
        self.refused(Code.FAILED_PRECONDITION, self.admin.StopSwarm,
                     pb.SwarmControlRequest(swarm=name))
        self.refused(Code.FAILED_PRECONDITION, self.admin.PauseSwarm,
                     pb.SwarmControlRequest(swarm=name))
        self.refused(Code.FAILED_PRECONDITION, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm=name, weights={"acc": 1}))
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=1, iteration=2), FIRM_B)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.DONE, pb.STOPPED))
        done = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name), FIRM_B)
        self.assertEqual((done.status, [p.particle_id for p in done.particles]),
                         (pb.GetAssignmentResponse.DONE, [1]))
        self.assertEqual(done.particles[0].last_reported_iteration, 1)
        self.assertEqual(self.call(self.agent.Heartbeat, pb.HeartbeatRequest(swarm=name),
                                   FIRM_A).swarm_state, pb.STOPPED)

    def test_list_swarms_is_ordered_by_name(self):
        for n in ("zz-list", "aa-list", "mm-list"):
            self.create(spec(n))
        names = [s.name for s in self.call(self.admin.ListSwarms, pb.ListSwarmsRequest()).swarms]
        self.assertEqual(names, sorted(names))
        self.assertTrue({"aa-list", "mm-list", "zz-list"} <= set(names))

    def test_clients_are_listed_and_revoked(self):
        self.refused(Code.NOT_FOUND, self.agent.Heartbeat, pb.HeartbeatRequest(swarm="nope"),
                     ("firm-z", "agent"))  # the call is seen even though it is refused
        clients = self.call(self.admin.ListClients, pb.ListClientsRequest()).clients
        ids = [c.identity for c in clients]
        self.assertEqual(ids, sorted(ids))
        z = [c for c in clients if c.identity == "firm-z"][0]
        self.assertEqual((z.role, z.revoked), ("agent", False))
        self.assertTrue(z.HasField("first_seen") and z.HasField("last_seen"))
        info = self.call(self.admin.RevokeClient, pb.RevokeClientRequest(identity="firm-z"))
        self.assertEqual((info.identity, info.role, info.revoked), ("firm-z", "agent", True))
        self.assertTrue(info.HasField("first_seen") and info.HasField("last_seen"))
        again = self.call(self.admin.RevokeClient, pb.RevokeClientRequest(identity="firm-z"))
        self.assertTrue(again.revoked)  # idempotent
        self.refused(Code.PERMISSION_DENIED, self.agent.Heartbeat,
                     pb.HeartbeatRequest(swarm="nope"), ("firm-z", "agent"), says="revoked")
        self.refused(Code.INVALID_ARGUMENT, self.admin.RevokeClient,
                     pb.RevokeClientRequest(identity="ops"))
        self.refused(Code.NOT_FOUND, self.admin.RevokeClient,
                     pb.RevokeClientRequest(identity="never-seen"))


class TemplateTest(WireTest):
    """SwarmSpec.template_blob_id: the template's schema becomes the swarm's."""

    def test_the_templates_schema_becomes_the_swarms(self):
        template = wire.adapter(0.0)
        self.upload(template, ADMIN)  # admins upload templates
        tid = wire.sha256_hex(template)
        created = self.create(spec("tmpl", template_blob_id=tid))
        schema = created.spec.schema
        self.assertEqual([(t.name, t.dtype, list(t.shape)) for t in schema.tensors],
                         [("m.lora_A.weight", spec_pb.DTYPE_F32, [2, 4]),
                          ("m.lora_B.weight", spec_pb.DTYPE_F32, [4, 2])])
        self.assertRegex(schema.fingerprint, "^[0-9a-f]{64}$")
        self.assertEqual(created.spec.template_blob_id, tid)
        # The schema is fixed before any expert: the first join answers it, and an expert of
        # another schema is refused.
        other = wire.adapter(0.1, [("m.lora_A.weight", "F32", (3, 4))])
        self.upload(other, FIRM_A)
        self.refused(Code.INVALID_ARGUMENT, self.agent.Join, pb.JoinRequest(
            swarm="tmpl", expert_blob_ids=[wire.sha256_hex(other)], capacity=1), FIRM_A,
            says="schema mismatch")
        good = wire.adapter(0.1)
        self.upload(good, FIRM_A)
        j = self.join("tmpl", [wire.sha256_hex(good)], FIRM_A)
        self.assertEqual(j.schema.fingerprint, schema.fingerprint)

    def test_an_explicit_schema_must_agree_with_the_template(self):
        template = wire.adapter(0.0)
        self.upload(template, ADMIN)
        tid = wire.sha256_hex(template)
        same = spec_pb.AdapterSchema(tensors=[
            spec_pb.TensorSpec(name=n, dtype=spec_pb.DTYPE_F32, shape=s)
            for n, _, s in wire.SCHEMA])
        self.create(spec("tmpl-agree", template_blob_id=tid, schema=same))
        differ = spec_pb.AdapterSchema(tensors=[
            spec_pb.TensorSpec(name="m.lora_A.weight", dtype=spec_pb.DTYPE_F32, shape=[2, 4])])
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("tmpl-differ", template_blob_id=tid, schema=differ)),
            says="template_blob_id")
        self.refused(Code.NOT_FOUND, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("tmpl-missing", template_blob_id="ab" * 32)), says="ab" * 32)
        junk = b"not a safetensors file"
        self.upload(junk, ADMIN)
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("tmpl-junk", template_blob_id=wire.sha256_hex(junk))),
            says="template_blob_id")
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("tmpl-form", template_blob_id="ABC")), says="template_blob_id")
        names = [s.name for s in self.call(self.admin.ListSwarms, pb.ListSwarmsRequest()).swarms]
        self.assertNotIn("tmpl-differ", names)  # a refused create stores nothing


class RefusalTest(WireTest):
    """Every documented refusal: its code, and a message naming the problem."""

    def test_roles_and_identity(self):
        self.refused(Code.PERMISSION_DENIED, self.admin.CreateSwarm,
                     pb.CreateSwarmRequest(spec=spec("roles")), FIRM_A)
        self.refused(Code.PERMISSION_DENIED, self.agent.Join,
                     pb.JoinRequest(swarm="roles", expert_blob_ids=["a" * 64], capacity=1),
                     ADMIN)
        with self.assertRaises(grpc.RpcError) as err:
            self.admin.ListSwarms(pb.ListSwarmsRequest(), timeout=30)
        self.assertEqual(err.exception.code(), Code.UNAUTHENTICATED)
        self.refused(Code.UNAUTHENTICATED, self.admin.ListSwarms, pb.ListSwarmsRequest(),
                     ("ops", "root"))

    def test_create_swarm_refusals_name_the_field(self):
        self.create(spec("taken"))
        self.refused(Code.ALREADY_EXISTS, self.admin.CreateSwarm,
                     pb.CreateSwarmRequest(spec=spec("taken")), says="taken")
        for bad in ("", "-lead", "has space", "x" * 65, "caf\u00e9"):
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=spec(bad)), says="swarm name")
        self.create(spec("x" * 64))  # 64 is allowed
        cases = [
            ("base_model", dict(base_model="b" * 257)),
            ("description", dict(description="d" * 1025)),
            ("quorum", dict(quorum=1.5)),
            ("transport_dtype", dict(transport_dtype=spec_pb.DTYPE_F64)),
            ("audit_sample_rate", dict(audit_sample_rate=2)),
            ("min_experts", dict(min_experts=0)),
            ("round_deadline_seconds", dict(round_deadline_seconds=-1)),
            ("schema", dict(schema=spec_pb.AdapterSchema(fingerprint="0" * 64))),
            ("schema.fingerprint", dict(schema=spec_pb.AdapterSchema(
                tensors=[spec_pb.TensorSpec(name="t", dtype=spec_pb.DTYPE_F32, shape=[1])],
                fingerprint="0" * 64))),
            ("schema.tensors[0]", dict(schema=spec_pb.AdapterSchema(
                tensors=[spec_pb.TensorSpec(name="t", shape=[1])]))),
            ("pool_size", dict(hyperparameters=spec_pb.SwarmHyperparameters(pool_size=-1))),
            ("hyperparameters", dict(hyperparameters=spec_pb.SwarmHyperparameters(
                step_decay=1.5))),
            # The particle space (SPEC 4.3): settings that do not apply are refused.
            ("decoder", dict(decoder=spec_pb.LINEAR_AB)),
            ("per_module", dict(per_module=True)),
            ("svd_rank", dict(svd_rank=2)),
            ("decoder", dict(space=spec_pb.EXPERT_COEFFICIENTS)),
            ("svd_rank", dict(space=spec_pb.EXPERT_COEFFICIENTS,
                              decoder=spec_pb.LORA_PRODUCT_SVD)),
            ("svd_rank", dict(space=spec_pb.EXPERT_COEFFICIENTS, decoder=spec_pb.LORA_PRODUCT,
                              svd_rank=3)),
            ("expert_sharing", dict(space=spec_pb.EXPERT_COEFFICIENTS,
                                    decoder=spec_pb.LORA_PRODUCT,
                                    expert_sharing=spec_pb.FORBIDDEN)),
            ("transport_dtype", dict(space=spec_pb.EXPERT_COEFFICIENTS,
                                     decoder=spec_pb.LINEAR_AB,
                                     transport_dtype=spec_pb.DTYPE_BF16)),
            ("template_blob_id", dict(space=spec_pb.EXPERT_COEFFICIENTS,
                                      decoder=spec_pb.LINEAR_AB, template_blob_id="a" * 64)),
        ]
        for i, (field, kw) in enumerate(cases):
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=spec("bad-%d" % i, **kw)), says=field)
        def with_utility(name, *components):
            s = spec(name)
            del s.utility[:]
            s.utility.extend(components)
            return s

        comp = spec_pb.UtilityComponent
        for i, (says, components) in enumerate([
                ("acc", [comp(name="acc", weight=1), comp(name="acc", weight=2)]),
                ("name", [comp(name="", weight=1)]),
                ("acc", [comp(name="acc", weight=1, min_value=2, max_value=1)]),
                ("weight", [comp(name="acc", weight=0)]),
                ("acc", [comp(name="acc", weight=math.nan)])]):
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=with_utility("bad-u%d" % i, *components)),
                         says=says)
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("bad-dtype", transport_dtype=7)), says="transport_dtype")
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm, pb.CreateSwarmRequest(
            spec=spec("bad-qc", quorum_count=0)), says="quorum_count")
        no_utility = spec("bad-utility")
        del no_utility.utility[:]
        self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                     pb.CreateSwarmRequest(spec=no_utility), says="utility")
        self.create(spec("limits-ok", base_model="b" * 256, description="d" * 1024))

    def test_upload_refusals(self):
        data = wire.adapter(0.5)
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data, blob_id="XYZ")
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(b"", blob_id=wire.sha256_hex(b"x"), total=0)
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        self.assertIn("total_size", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data, total=5 << 30)
        self.assertEqual(e.exception.code(), Code.RESOURCE_EXHAUSTED)
        with self.assertRaises(grpc.RpcError) as e:  # hash mismatch at the end
            self.upload(data, blob_id=wire.sha256_hex(b"other"))
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        self.assertIn("hash mismatch", e.exception.details())
        second_header = pb.UploadBlobRequest(header=pb.UploadHeader(
            blob_id=wire.sha256_hex(data), total_size=len(data)))
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data[:10], total=len(data), blob_id=wire.sha256_hex(data),
                        extra=[second_header])
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        out_of_order = pb.UploadBlobRequest(chunk=pb.BlobChunk(offset=50, data=b"x"))
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data[:10], total=len(data), blob_id=wire.sha256_hex(data),
                        extra=[out_of_order])
        self.assertEqual(e.exception.code(), Code.FAILED_PRECONDITION)
        self.assertIn("out of order", e.exception.details())
        # An early end keeps the bytes for a resume; resuming past them is refused.
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data[:20], total=len(data), blob_id=wire.sha256_hex(data), chunk=20)
        self.assertEqual(e.exception.code(), Code.FAILED_PRECONDITION)
        off = self.call(self.agent.GetUploadOffset, pb.GetUploadOffsetRequest(
            blob_id=wire.sha256_hex(data)), FIRM_A)
        self.assertEqual((off.committed_bytes, off.complete), (20, False))
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(data, offset=30)
        self.assertEqual(e.exception.code(), Code.FAILED_PRECONDITION)
        self.assertIn("20", e.exception.details())
        done = self.upload(data, offset=20)
        self.assertEqual(done.committed_bytes, len(data))
        big = b"\0" * ((4 << 20) + 1)
        with self.assertRaises(grpc.RpcError) as e:
            self.upload(big, chunk=len(big))
        self.assertEqual(e.exception.code(), Code.RESOURCE_EXHAUSTED)
        self.refused(Code.INVALID_ARGUMENT, self.agent.GetUploadOffset,
                     pb.GetUploadOffsetRequest(blob_id="nope"), FIRM_A)

    def test_download_refusals(self):
        data = wire.adapter(0.6)
        self.upload(data)
        bid = wire.sha256_hex(data)
        self.refused(Code.NOT_FOUND, self.agent.DownloadBlob,
                     pb.DownloadBlobRequest(blob_id="c" * 64), FIRM_A)
        self.refused(Code.OUT_OF_RANGE, self.agent.DownloadBlob,
                     pb.DownloadBlobRequest(blob_id=bid, offset=len(data) + 1), FIRM_A)
        self.refused(Code.INVALID_ARGUMENT, self.agent.DownloadBlob,
                     pb.DownloadBlobRequest(blob_id="C" * 64), FIRM_A)

    def test_join_refusals(self):
        self.create(spec("join-r"))
        good = wire.adapter(0.7)
        self.upload(good)
        gid = wire.sha256_hex(good)
        nan = wire.safetensors([(n, d, s, [float("nan")] * (s[0] * s[1]))
                                for n, d, s in wire.SCHEMA])
        self.upload(nan)

        def refuse(code, says=None, who=FIRM_A, **kw):
            req = dict(swarm="join-r", expert_blob_ids=[gid], capacity=1)
            req.update(kw)
            self.refused(code, self.agent.Join, pb.JoinRequest(**req), who, says=says)

        refuse(Code.NOT_FOUND, swarm="no-such-swarm")
        refuse(Code.INVALID_ARGUMENT, "at least one", expert_blob_ids=[])
        refuse(Code.INVALID_ARGUMENT, "capacity", capacity=0)
        refuse(Code.INVALID_ARGUMENT, "twice", expert_blob_ids=[gid, gid])
        refuse(Code.INVALID_ARGUMENT, "SHA-256", expert_blob_ids=["xyz"])
        refuse(Code.NOT_FOUND, "uploaded", expert_blob_ids=["d" * 64])
        refuse(Code.INVALID_ARGUMENT, None, expert_blob_ids=[wire.sha256_hex(nan)])
        refuse(Code.INVALID_ARGUMENT, "agent_version", agent_version="v" * 257)
        refuse(Code.INVALID_ARGUMENT, "adapter_config_json", adapter_config_json="{not json")
        refuse(Code.INVALID_ARGUMENT, "adapter_config_json",
               adapter_config_json='{"peft_type": "LORA", "pad": "%s"}' % ("p" * (64 << 10)))
        refuse(Code.INVALID_ARGUMENT, "base model",
               adapter_config_json='{"peft_type": "LORA", "base_model_name_or_path": "big"}')
        st = self.status("join-r")
        self.assertEqual(st.experts_joined, 0)  # refused joins changed nothing
        # Joins close once the pool is built.
        self.join("join-r", [gid], FIRM_A, agent_version="v" * 256)
        other = wire.adapter(0.8)
        self.upload(other, FIRM_B)
        self.join("join-r", [wire.sha256_hex(other)], FIRM_B)
        late = wire.adapter(0.9)
        self.upload(late, FIRM_B)
        refuse(Code.FAILED_PRECONDITION, "joins are closed", who=FIRM_B,
               expert_blob_ids=[wire.sha256_hex(late)])

    def test_report_refusals(self):
        self.create(spec("report-early"))
        self.refused(Code.FAILED_PRECONDITION, self.agent.Report, pb.ReportRequest(
            swarm="report-early", particle_id=0, iteration=0, position_blob_id="a" * 64,
            scores={"acc": 0.5}), FIRM_A, says="no pool")
        a, b = self.running_swarm("report-r")

        def refuse(code, says=None, **kw):
            req = dict(swarm="report-r", particle_id=0, iteration=0, position_blob_id=a,
                       scores={"acc": 0.5})
            req.update(kw)
            self.refused(code, self.agent.Report, pb.ReportRequest(**req), FIRM_A, says=says)

        refuse(Code.NOT_FOUND, swarm="no-such-swarm")
        refuse(Code.NOT_FOUND, "particle", particle_id=9)
        refuse(Code.PERMISSION_DENIED, "firm-b", particle_id=1, position_blob_id=b)
        refuse(Code.INVALID_ARGUMENT, "position_blob_id", position_blob_id="xyz")
        refuse(Code.INVALID_ARGUMENT, "WEIGHTS", position_blob_id="", position_alpha=[1.0, 0.0])
        refuse(Code.INVALID_ARGUMENT, "canonical blob", position_alpha=[1.0, 0.0])
        refuse(Code.INVALID_ARGUMENT, "position_alpha", position_blob_id="",
               position_alpha=[1.0, math.nan])
        refuse(Code.INVALID_ARGUMENT, "initial position", position_blob_id="e" * 64)
        refuse(Code.INVALID_ARGUMENT, "no scores", evaluation_failed=True)
        refuse(Code.INVALID_ARGUMENT, "cannot fail", evaluation_failed=True, scores={})
        refuse(Code.INVALID_ARGUMENT, "evaluation_seconds", evaluation_seconds=-1)
        refuse(Code.INVALID_ARGUMENT, "evaluation_seconds", evaluation_seconds=math.nan)
        refuse(Code.INVALID_ARGUMENT, "evaluation_failed is false", failure_reason="oops")
        refuse(Code.INVALID_ARGUMENT, "failure_reason is 1025", evaluation_failed=True,
               scores={}, failure_reason="r" * 1025)
        # A failed local training (SPEC 4.4) is reported with its reason, never at iteration 0.
        refuse(Code.INVALID_ARGUMENT, "training_failed is false", training_failure_reason="oom")
        refuse(Code.INVALID_ARGUMENT, "iteration 0", training_failed=True)
        refuse(Code.INVALID_ARGUMENT, "training_failure_reason is 1025", training_failed=True,
               training_failure_reason="r" * 1025)
        refuse(Code.INVALID_ARGUMENT, "idempotency_key is 129", idempotency_key="k" * 129)
        refuse(Code.INVALID_ARGUMENT, "printable ASCII", idempotency_key="tab\there")
        refuse(Code.INVALID_ARGUMENT, "printable ASCII", idempotency_key="caf\u00e9")
        refuse(Code.INVALID_ARGUMENT, "acc", scores={"acc": 1.5})
        refuse(Code.INVALID_ARGUMENT, "acc", scores={"acc": math.nan})
        refuse(Code.INVALID_ARGUMENT, "acc", scores={"other": 0.5})
        refuse(Code.FAILED_PRECONDITION, None, iteration=1)
        # None of that counted: the first real report is still the first.
        r = self.report("report-r", 0, 0, a, 0.5, idempotency_key="k" * 128)
        self.assertTrue(r.accepted and not r.duplicate)

    def test_weights_and_control_refusals(self):
        self.create(spec("weights-r"))
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r"), says="weights")
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"nope": 1}),
                     says="nope")
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"acc": math.inf}))
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"acc": 0}))
        self.refused(Code.NOT_FOUND, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="nope", weights={"acc": 1}))
        self.assertEqual(self.call(self.admin.GetUtilityWeights, pb.GetUtilityWeightsRequest(
            swarm="weights-r")).version, 1)  # nothing changed
        # A scheduled change: after_iteration in [1, max_iterations) and above the closed
        # iteration; stored and shown until the swarm is over.
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"acc": 2},
                                                 after_iteration=-1), says="after_iteration")
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"acc": 2},
                                                 after_iteration=3), says="never come")
        self.refused(Code.INVALID_ARGUMENT, self.admin.SetUtilityWeights,
                     pb.SetUtilityWeightsRequest(swarm="weights-r", weights={"nope": 2},
                                                 after_iteration=1), says="nope")
        self.assertFalse(self.call(self.admin.GetUtilityWeights, pb.GetUtilityWeightsRequest(
            swarm="weights-r")).HasField("scheduled"))
        self.create(spec("weights-s"))
        w = self.call(self.admin.SetUtilityWeights, pb.SetUtilityWeightsRequest(
            swarm="weights-s", weights={"acc": 2}, after_iteration=2))
        self.assertEqual((w.version, w.scheduled.after_iteration, dict(w.scheduled.weights)),
                         (1, 2, {"acc": 2}))
        self.assertEqual(self.call(self.admin.GetUtilityWeights,
                                   pb.GetUtilityWeightsRequest(swarm="weights-s")), w)
        self.call(self.admin.StopSwarm, pb.SwarmControlRequest(swarm="weights-s"))
        self.assertFalse(self.call(self.admin.GetUtilityWeights, pb.GetUtilityWeightsRequest(
            swarm="weights-s")).HasField("scheduled"))
        self.refused(Code.INVALID_ARGUMENT, self.admin.StopSwarm,
                     pb.SwarmControlRequest(swarm="weights-r", reason="r" * 1025),
                     says="reason")
        self.refused(Code.FAILED_PRECONDITION, self.admin.PauseSwarm,
                     pb.SwarmControlRequest(swarm="weights-r"))  # pending, not running
        self.refused(Code.FAILED_PRECONDITION, self.admin.ExportBest,
                     pb.ExportBestRequest(swarm="weights-r"))
        for rpc, req in ((self.admin.GetSwarmStatus, pb.GetSwarmStatusRequest),
                         (self.admin.ListParticles, pb.ListParticlesRequest),
                         (self.admin.GetHistory, pb.GetHistoryRequest),
                         (self.admin.GetUtilityWeights, pb.GetUtilityWeightsRequest),
                         (self.admin.ExportBest, pb.ExportBestRequest),
                         (self.admin.ResumeSwarm, pb.SwarmControlRequest)):
            self.refused(Code.NOT_FOUND, rpc, req(swarm="nope"), says="nope")
        for rpc, req in ((self.agent.GetAssignment, pb.GetAssignmentRequest),
                         (self.agent.Heartbeat, pb.HeartbeatRequest)):
            self.refused(Code.NOT_FOUND, rpc, req(swarm="nope"), FIRM_A, says="nope")
        s = self.call(self.admin.StopSwarm, pb.SwarmControlRequest(swarm="weights-r",
                                                                   reason="r" * 1024))
        self.assertEqual(s.state, pb.STOPPED)  # from PENDING_EXPERTS

    def test_requests_that_do_not_parse_name_the_field(self):
        """A string that is not UTF-8: INVALID_ARGUMENT naming it, not a bare INTERNAL."""

        def raw_unary(path, payload, who):
            with self.assertRaises(grpc.RpcError) as e:
                self.channel.unary_unary(path)(payload, metadata=md(who), timeout=30)
            self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT, e.exception.details())
            return e.exception.details()

        bad = b"s\xff\xfe"
        self.assertEqual(
            raw_unary("/wxp.v1.AdminService/GetSwarmStatus", ld(1, bad), ADMIN),
            "request is not a valid wxp.v1.GetSwarmStatusRequest: string field swarm is not "
            "valid UTF-8")
        spec_bytes = ld(1, b"ok") + ld(6, ld(1, bad))
        self.assertIn("string field spec.utility[0].name is not valid UTF-8",
                      raw_unary("/wxp.v1.AdminService/CreateSwarm", ld(1, spec_bytes), ADMIN))
        self.assertIn("string field scores[0].key is not valid UTF-8",
                      raw_unary("/wxp.v1.AgentService/Report",
                                ld(1, b"s") + ld(5, ld(1, bad)), FIRM_A))
        with self.assertRaises(grpc.RpcError) as e:  # a server stream's request
            list(self.channel.unary_stream("/wxp.v1.AgentService/DownloadBlob")(
                ld(1, bad), metadata=md(FIRM_A), timeout=30))
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        self.assertIn("wxp.v1.DownloadBlobRequest: string field blob_id",
                      e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.channel.stream_unary("/wxp.v1.AgentService/UploadBlob")(
                iter([ld(1, ld(1, bad))]), metadata=md(FIRM_A), timeout=30)
        self.assertEqual(e.exception.code(), Code.INVALID_ARGUMENT)
        self.assertIn("string field header.blob_id is not valid UTF-8", e.exception.details())
        # Not a protobuf at all.
        self.assertIn("not a protocol buffer",
                      raw_unary("/wxp.v1.AdminService/GetSwarmStatus", b"\x0a\x7f", ADMIN))


class AsyncSwarmTest(WireTest):
    """ASYNC pacing, repel off, a failed evaluation, and finishing by max_iterations."""

    def test_async_run_to_finish(self):
        name = "async"
        self.create(spec(name, mode=spec_pb.ASYNC, hyperparameters=spec_pb.SwarmHyperparameters(
            pool_size=2, max_iterations=1, repel_enabled=False)))
        a, b = wire.adapter(0.1), wire.adapter(0.2)
        self.upload(a, FIRM_A)
        self.upload(b, FIRM_B)
        self.join(name, [wire.sha256_hex(a)], FIRM_A)
        self.join(name, [wire.sha256_hex(b)], FIRM_B)
        self.report(name, 0, 0, wire.sha256_hex(a), 0.5)
        self.report(name, 1, 0, wire.sha256_hex(b), 0.6, who=FIRM_B)
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=1), FIRM_A)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 1))
        self.assertEqual(t.coefficients.d, 0)  # repel off
        self.assertAlmostEqual(t.coefficients.a + t.coefficients.b + t.coefficients.c, 1.0)
        # ASYNC: the next iteration only after reporting this one, and never two ahead.
        self.refused(Code.FAILED_PRECONDITION, self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=2), FIRM_A, says="must report")
        self.refused(Code.FAILED_PRECONDITION, self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=3), FIRM_A)
        # A failed evaluation: accepted, utility 0, p_i kept, no upload asked for.
        r = self.call(self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=1, position_blob_id="9" * 64,
            evaluation_failed=True, failure_reason="evaluator timed out"), FIRM_A)
        self.assertTrue(r.accepted)
        self.assertEqual((r.utility, r.new_personal_best, r.upload_requested), (0, False, False))
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=1, iteration=1), FIRM_B)
        self.assertEqual(t.status, pb.GetTargetsResponse.READY)
        self.report(name, 1, 1, wire.sha256_hex(wire.adapter(0.25)), 0.55, who=FIRM_B)
        st = self.status(name)
        self.assertEqual((st.state, st.termination_reason, st.iteration),
                         (pb.FINISHED, "max_iterations", 1))
        t = self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=name, particle_id=0, iteration=2), FIRM_A)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.DONE, pb.FINISHED))
        files = {m.path for m in self.admin.ExportBest(pb.ExportBestRequest(swarm=name),
                                                       metadata=md(ADMIN), timeout=60)}
        self.assertEqual(files, {"adapter_model.safetensors", "adapter_config.json"})
        self.refused(Code.FAILED_PRECONDITION, self.agent.Report, pb.ReportRequest(
            swarm=name, particle_id=0, iteration=2, position_blob_id="9" * 64,
            scores={"acc": 0.5}), FIRM_A, says="over")

    def test_one_upload_of_a_blob_at_a_time(self):
        data = wire.adapter(3.0)
        gate = threading.Event()
        first = self.hold_upload(self.agent, data, gate)
        try:
            with self.assertRaises(grpc.RpcError) as e:
                self.upload(data, FIRM_B)
            self.assertEqual(e.exception.code(), Code.ABORTED)
            self.assertIn("in progress", e.exception.details())
        finally:
            gate.set()
        self.assertEqual(first.result().committed_bytes, len(data))


class StreamLimitTest(WireTest):
    """ServerLimits.max_concurrent_streams counts over the whole server."""

    config_text = "limits { max_concurrent_streams: 2 }\n"

    def test_blob_streams_are_limited_on_one_connection_too(self):
        gate = threading.Event()
        held = []
        for i in range(2):
            data = wire.adapter(20.0 + i)
            held.append((data, self.hold_upload(self.agent, data, gate)))
        try:
            # Refused, not queued behind the connection's HTTP/2 stream limit.
            with self.assertRaises(grpc.RpcError) as e:
                list(self.agent.DownloadBlob(pb.DownloadBlobRequest(blob_id="f" * 64),
                                             metadata=md(FIRM_B), timeout=30))
            self.assertEqual(e.exception.code(), Code.UNAVAILABLE)
        finally:
            gate.set()
        for data, future in held:
            self.assertEqual(future.result().committed_bytes, len(data))

    def test_blob_streams_are_limited_across_connections(self):
        gate = threading.Event()
        held, channels = [], []
        for i in range(2):
            data = wire.adapter(10.0 + i)
            ch = self.server.channel(distinct=i)  # each upload on its own connection
            channels.append(ch)
            held.append((data, self.hold_upload(pb_grpc.AgentServiceStub(ch), data, gate)))
        try:
            third = self.server.channel(distinct=9)
            channels.append(third)
            with self.assertRaises(grpc.RpcError) as e:
                list(pb_grpc.AgentServiceStub(third).DownloadBlob(
                    pb.DownloadBlobRequest(blob_id="f" * 64), metadata=md(FIRM_B), timeout=30))
            self.assertEqual(e.exception.code(), Code.UNAVAILABLE)
            self.assertIn("max_concurrent_streams", e.exception.details())
            with self.assertRaises(grpc.RpcError) as e:
                list(self.admin.ExportBest(pb.ExportBestRequest(swarm="x"), metadata=md(ADMIN),
                                           timeout=30))
            self.assertEqual(e.exception.code(), Code.UNAVAILABLE)
        finally:
            gate.set()
        for data, future in held:
            self.assertEqual(future.result().committed_bytes, len(data))
        # The slots are free again.
        msgs = self.download(wire.sha256_hex(held[0][0]))
        self.assertEqual(b"".join(m.chunk.data for m in msgs), held[0][0])
        for ch in channels:
            ch.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
