"""The documented wire contract of audits of reported scores (SPEC 12), field by field.

The same independent client as contract_test.py (stubs generated from proto/ at test time,
Debian's python3-grpcio, no WXP code). The contract is what the proto comments say:
swarm_spec.proto's AuditPolicy (CreateSwarm resolves and refuses it), the auditor role
(PullAuditTask, ReportAudit and DownloadBlob, nothing else), ReportResponse.audit_pending,
AuditTask, ReportAuditResponse, ClientInfo's audit counts, reputation and quarantine,
UnquarantineClient, ListParticles' disputed / pending counts and GetHistory's audited
claims. A SYNC swarm of two agents and one auditor is driven by hand over the wire, round by
round, to FINISHED; an ASYNC one far enough to see that only the claim's particle waits; a
sampled swarm; and the order in which PullAuditTask hands claims out. Every step is a
synchronous answer of the server (a WAIT is checked, never waited out), so nothing depends
on time.

Run by tests/contract/contract_test.sh after token_contract_test.py.
"""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract_test as ct  # noqa: E402  (generates the stubs; its tests do not run here)
import wire  # noqa: E402

import grpc  # noqa: E402

pb, spec_pb, Code = ct.pb, ct.spec_pb, ct.Code
ADMIN, FIRM_A, FIRM_B = ct.ADMIN, ct.FIRM_A, ct.FIRM_B
AUDITOR = ("vendor-audit", "auditor")
TOLERANCE = 0.05


def policy(**kw):
    """An enabled audit policy of the "acc" component (tolerance 0.05) unless `kw` says
    otherwise."""
    kw.setdefault("enabled", True)
    tolerance = kw.pop("tolerance", {"acc": TOLERANCE})
    p = spec_pb.AuditPolicy(**kw)
    for name, value in tolerance.items():
        p.tolerance[name] = value
    return p


def audited_spec(name, audit=None, **kw):
    return ct.spec(name, audit=policy() if audit is None else audit, **kw)


class AuditWireTest(ct.WireTest):
    """Calls of the audit flow, as an agent, an auditor and an admin make them."""

    def pull(self, swarm="", who=AUDITOR):
        return self.call(self.agent.PullAuditTask, pb.PullAuditTaskRequest(swarm=swarm), who)

    def audit(self, swarm, particle, iteration, acc=None, who=AUDITOR, **kw):
        scores = {} if acc is None else {"acc": acc}
        return self.call(self.agent.ReportAudit, pb.ReportAuditRequest(
            swarm=swarm, particle_id=particle, iteration=iteration, scores=scores, **kw), who)

    def targets(self, swarm, particle, k, who):
        return self.call(self.agent.GetTargets, pb.GetTargetsRequest(
            swarm=swarm, particle_id=particle, iteration=k), who)

    def particles(self, swarm):
        return self.call(self.admin.ListParticles,
                         pb.ListParticlesRequest(swarm=swarm)).particles

    def client(self, identity):
        clients = self.call(self.admin.ListClients, pb.ListClientsRequest()).clients
        found = [c for c in clients if c.identity == identity]
        self.assertEqual(len(found), 1, identity)
        return found[0]

    def running_swarm_audited(self, name):
        """An audited swarm with two experts joined (firm-a: particle 0, firm-b: 1)."""
        self.create(audited_spec(name))
        a, b = wire.adapter(0.1), wire.adapter(0.2)
        self.upload(a, FIRM_A)
        self.upload(b, FIRM_B)
        self.join(name, [wire.sha256_hex(a)], FIRM_A)
        joined = self.join(name, [wire.sha256_hex(b)], FIRM_B)
        self.assertEqual((joined.state, list(joined.assigned_particle_ids)), (pb.RUNNING, [1]))
        return wire.sha256_hex(a), wire.sha256_hex(b)

    def assert_task(self, task, swarm, particle, iteration, blob_id, acc):
        """Every documented AuditTask field of a WEIGHTS swarm's claim."""
        self.assertEqual((task.swarm, task.particle_id, task.iteration, task.position_blob_id),
                         (swarm, particle, iteration, blob_id))
        self.assertEqual(dict(task.claimed_scores), {"acc": acc})
        self.assertEqual(dict(task.tolerance), {"acc": TOLERANCE})
        # WEIGHTS: the position is the blob; nothing about alpha or its decoding.
        self.assertEqual(list(task.position_alpha), [])
        self.assertEqual((task.space, task.decoder, task.svd_rank, task.per_module,
                          task.combination),
                         (spec_pb.PARTICLE_SPACE_KIND_UNSPECIFIED,
                          spec_pb.COEFFICIENT_DECODER_UNSPECIFIED, 0, False,
                          spec_pb.TOKEN_COMBINATION_UNSPECIFIED))
        self.assertEqual((list(task.expert_blob_ids), list(task.expert_adapter_configs)),
                         ([], []))


class AuditPolicySpecTest(AuditWireTest):
    """SwarmSpec.audit at CreateSwarm: resolved and echoed, or refused naming the field."""

    def test_a_policy_is_resolved(self):
        created = self.create(audited_spec("pol-default", policy(sample_rate=0.25)))
        a = created.spec.audit
        self.assertTrue(a.enabled)
        self.assertEqual(a.sample_rate, 0.25)
        self.assertEqual(dict(a.tolerance), {"acc": TOLERANCE})
        self.assertTrue(a.HasField("quarantine_after"))
        self.assertEqual(a.quarantine_after, 3)  # unset = 3
        created = self.create(audited_spec("pol-explicit", policy(
            quarantine_after=1, sample_rate=1, tolerance={"acc": 0})))
        a = created.spec.audit
        self.assertEqual((a.enabled, a.sample_rate, a.quarantine_after, dict(a.tolerance)),
                         (True, 1, 1, {"acc": 0}))
        # Two components: each needs its tolerance.
        s = audited_spec("pol-two", policy(tolerance={"acc": 0.1, "f1": 0.2}))
        s.utility.add(name="f1", weight=1, min_value=0, max_value=1)
        self.assertEqual(dict(self.create(s).spec.audit.tolerance), {"acc": 0.1, "f1": 0.2})

    def test_no_policy_is_off(self):
        """Absent or enabled false: off. The swarm is created without a policy and runs
        as before audits: a new g counts at once, nothing is held or listed."""
        for n, (name, audit) in enumerate((
                ("pol-absent", None), ("pol-disabled", spec_pb.AuditPolicy()),
                ("pol-disabled-tol", spec_pb.AuditPolicy(
                    enabled=False, tolerance={"acc": 0.5}, quarantine_after=2)))):
            s = ct.spec(name)
            if audit is not None:
                s.audit.CopyFrom(audit)
            created = self.create(s)
            self.assertEqual(created.state, pb.PENDING_EXPERTS)
            self.assertFalse(created.spec.audit.enabled, name)
            a, b = wire.adapter(1.0 + n), wire.adapter(1.5 + n)
            self.upload(a, FIRM_A)
            self.upload(b, FIRM_B)
            self.join(name, [wire.sha256_hex(a)], FIRM_A)
            self.join(name, [wire.sha256_hex(b)], FIRM_B)
            asg = self.call(self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name),
                            FIRM_A)
            mine = asg.particles[0].particle_id
            r = self.report(name, mine, 0, wire.sha256_hex(a), 0.5)
            self.assertTrue(r.new_global_best and not r.audit_pending, name)
            self.assertEqual(self.status(name).global_best.particle_id, mine)
            self.assertEqual([p.pending_audits for p in self.particles(name)], [0, 0])
            history = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
            self.assertEqual(list(history.audits), [])
        self.assertEqual(self.pull().status, pb.PullAuditTaskResponse.NONE)

    def test_every_documented_refusal_names_the_field(self):
        cases = [
            ("audit.sample_rate", policy(sample_rate=-0.1)),
            ("audit.sample_rate", policy(sample_rate=1.5)),
            ("audit.sample_rate", policy(sample_rate=math.nan)),
            ("audit.tolerance", policy(tolerance={})),  # the component has none
            ("audit.tolerance", policy(tolerance={"acc": -0.01})),
            ("audit.tolerance", policy(tolerance={"acc": math.nan})),
            ("audit.tolerance", policy(tolerance={"acc": math.inf})),
            ("audit.tolerance", policy(tolerance={"acc": 0.1, "latency": 0.1})),  # no such
            ("audit.quarantine_after", policy(quarantine_after=0)),
            ("audit.quarantine_after", policy(quarantine_after=-2)),
        ]
        for i, (field, audit) in enumerate(cases):
            name = "pol-bad-%d" % i
            self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                         pb.CreateSwarmRequest(spec=audited_spec(name, audit)), says=field)
            # Nothing created.
            self.refused(Code.NOT_FOUND, self.admin.GetSwarmStatus,
                         pb.GetSwarmStatusRequest(swarm=name))
        # A component without a tolerance is named too.
        s = audited_spec("pol-bad-f1", policy(tolerance={"acc": 0.1}))
        s.utility.add(name="f1", weight=1, min_value=0, max_value=1)
        details = self.refused(Code.INVALID_ARGUMENT, self.admin.CreateSwarm,
                               pb.CreateSwarmRequest(spec=s), says="audit.tolerance")
        self.assertIn("f1", details)
        names = [x.name for x in self.call(self.admin.ListSwarms, pb.ListSwarmsRequest()).swarms]
        self.assertFalse([n for n in names if n.startswith("pol-bad")], names)


class AuditRoleTest(AuditWireTest):
    """The auditor role: PullAuditTask, ReportAudit and DownloadBlob; refused elsewhere.
    Agents and admins are refused the audit RPCs."""

    def test_the_auditor_role(self):
        name = "roles"
        a, _ = self.running_swarm_audited(name)

        # Admitted: the audit RPCs (nothing to audit yet) and downloads.
        none = self.pull(name)
        self.assertEqual((none.status, none.swarm_state),
                         (pb.PullAuditTaskResponse.NONE, pb.RUNNING))
        self.assertGreater(none.retry_after_ms, 0)
        self.assertFalse(none.HasField("task"))
        anywhere = self.pull()
        self.assertEqual(anywhere.status, pb.PullAuditTaskResponse.NONE)
        self.assertGreater(anywhere.retry_after_ms, 0)
        self.refused(Code.NOT_FOUND, self.agent.ReportAudit, pb.ReportAuditRequest(
            swarm=name, particle_id=0, iteration=0, scores={"acc": 0.5}), AUDITOR)
        data = b"".join(m.chunk.data for m in self.download(a, who=AUDITOR))
        self.assertEqual(wire.sha256_hex(data), a)

        # Refused everything else, agent and admin RPCs alike.
        blob = wire.adapter(0.9)
        with self.assertRaises(grpc.RpcError) as err:
            self.upload(blob, AUDITOR)
        self.assertEqual(err.exception.code(), Code.PERMISSION_DENIED)
        for rpc, request in (
                (self.agent.GetUploadOffset, pb.GetUploadOffsetRequest(blob_id=a)),
                (self.agent.Join, pb.JoinRequest(swarm=name, expert_blob_ids=[a], capacity=1,
                                                  adapter_config_json=ct.CONFIG)),
                (self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name)),
                (self.agent.GetTargets, pb.GetTargetsRequest(swarm=name, particle_id=0,
                                                             iteration=1)),
                (self.agent.Report, pb.ReportRequest(swarm=name, particle_id=0, iteration=0,
                                                     position_blob_id=a,
                                                     scores={"acc": 0.5})),
                (self.agent.Heartbeat, pb.HeartbeatRequest(swarm=name)),
                (self.admin.CreateSwarm, pb.CreateSwarmRequest(spec=audited_spec("by-auditor"))),
                (self.admin.ListSwarms, pb.ListSwarmsRequest()),
                (self.admin.GetSwarmStatus, pb.GetSwarmStatusRequest(swarm=name)),
                (self.admin.ListParticles, pb.ListParticlesRequest(swarm=name)),
                (self.admin.GetHistory, pb.GetHistoryRequest(swarm=name)),
                (self.admin.ListClients, pb.ListClientsRequest()),
                (self.admin.UnquarantineClient,
                 pb.UnquarantineClientRequest(identity=AUDITOR[0])),
                (self.admin.ExportBest, pb.ExportBestRequest(swarm=name))):
            self.refused(Code.PERMISSION_DENIED, rpc, request, AUDITOR)

        # The audit RPCs are the auditor's alone.
        for who in (FIRM_A, ADMIN):
            self.refused(Code.PERMISSION_DENIED, self.agent.PullAuditTask,
                         pb.PullAuditTaskRequest(swarm=name), who)
            self.refused(Code.PERMISSION_DENIED, self.agent.ReportAudit, pb.ReportAuditRequest(
                swarm=name, particle_id=0, iteration=0, scores={"acc": 0.5}), who)
        # The swarm is as it was: nothing the refused calls asked for happened.
        st = self.status(name)
        self.assertEqual((st.state, st.global_best.particle_id), (pb.RUNNING, -1))
        self.assertNotIn("by-auditor",
                         [s.name for s in self.call(self.admin.ListSwarms,
                                                    pb.ListSwarmsRequest()).swarms])
        # The auditor is a client of its own role, with nothing audited of its own.
        info = self.client(AUDITOR[0])
        self.assertEqual((info.role, info.audits_confirmed, info.audits_disputed, info.strikes,
                          info.reputation, info.quarantined, info.revoked),
                         ("auditor", 0, 0, 0, 1.0, False, False))



class AuditRequestRefusalTest(AuditWireTest):
    """ReportAudit's and PullAuditTask's documented refusals; none decides anything."""

    def test_audit_request_refusals(self):
        name = "audit-refusals"
        a, _ = self.running_swarm_audited(name)
        self.refused(Code.NOT_FOUND, self.agent.PullAuditTask,
                     pb.PullAuditTaskRequest(swarm="no-such-swarm"), AUDITOR)
        self.refused(Code.NOT_FOUND, self.agent.ReportAudit, pb.ReportAuditRequest(
            swarm="no-such-swarm", particle_id=0, iteration=0, scores={"acc": 0.5}), AUDITOR)
        # A claim to decide, held back: particle 0's initial report (g is none yet).
        r = self.report(name, 0, 0, a, 0.5)
        self.assertTrue(r.accepted and r.audit_pending)
        for says, scores, extra in (
                ("acc", {}, {}),  # missing
                ("acc", {"acc": math.nan}, {}),
                ("acc", {"acc": math.inf}, {}),
                ("acc", {"acc": 1.5}, {}),  # outside [0, 1]
                ("acc", {"f1": 0.5}, {}),  # not the component
                ("scores", {"acc": 0.5}, {"evaluation_failed": True}),
                ("failure_reason", {}, {"evaluation_failed": True,
                                        "failure_reason": "r" * 1025})):
            self.refused(Code.INVALID_ARGUMENT, self.agent.ReportAudit, pb.ReportAuditRequest(
                swarm=name, particle_id=0, iteration=0, scores=scores, **extra), AUDITOR,
                says=says)
        # None of them decided anything: the claim is still the task.
        task = self.pull(name)
        self.assertEqual((task.status, task.task.particle_id, task.task.iteration),
                         (pb.PullAuditTaskResponse.TASK, 0, 0))
        self.assertEqual(self.particles(name)[0].pending_audits, 1)
        # The longest reason is fine; a failed evaluation leaves the claim pending.
        failed = self.audit(name, 0, 0, evaluation_failed=True, failure_reason="r" * 1024)
        self.assertEqual((failed.verdict, failed.already_decided, failed.reporter_quarantined),
                         (pb.AUDIT_PENDING, False, False))


class AuditedSwarmTest(AuditWireTest):
    """A SYNC WEIGHTS swarm, audited (tolerance 0.05, quarantine_after unset = 3), with two
    agents and one auditor, from the first report to FINISHED: held-back candidates for g,
    confirmed and disputed claims, a failed audit, quarantine and its lifting."""

    def report_position(self, name, particle, k, acc, who, value):
        """Reports a new position of `value` (uploading it when asked); returns (its blob
        id, its bytes, the answer)."""
        data = wire.adapter(value)
        blob_id = wire.sha256_hex(data)
        r = self.report(name, particle, k, blob_id, acc, who=who)
        self.assertTrue(r.accepted and not r.duplicate)
        return blob_id, data, r

    def test_an_audited_swarm_from_spec_to_finish(self):
        name = "audited"
        self.create(audited_spec(name, hyperparameters=spec_pb.SwarmHyperparameters(
            pool_size=2, max_iterations=4)))
        a_bytes, b_bytes = wire.adapter(0.1), wire.adapter(0.2)
        a, b = wire.sha256_hex(a_bytes), wire.sha256_hex(b_bytes)
        self.upload(a_bytes, FIRM_A)
        self.upload(b_bytes, FIRM_B)
        self.join(name, [a], FIRM_A)
        joined = self.join(name, [b], FIRM_B)
        self.assertEqual((joined.state, list(joined.assigned_particle_ids)), (pb.RUNNING, [1]))

        # ---- Iteration 0: both initial reports would be a new g (there is none): held.
        r = self.report(name, 0, 0, a, 0.5)
        self.assertTrue(r.accepted and r.audit_pending and not r.duplicate)
        self.assertFalse(r.new_personal_best or r.new_global_best or r.new_global_worst)
        self.assertFalse(r.upload_requested)  # the server holds initial positions
        self.assertEqual(r.utility, 0.5)
        dup = self.report(name, 0, 0, a, 0.5)
        self.assertTrue(dup.accepted and dup.duplicate and dup.audit_pending)
        r = self.report(name, 1, 0, b, 0.7, who=FIRM_B)
        self.assertTrue(r.accepted and r.audit_pending)
        self.assertFalse(r.new_global_best)
        # Neither counts: no g, the round does not close, targets wait.
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.particle_id), (0, -1))
        t = self.targets(name, 0, 1, FIRM_A)
        self.assertEqual((t.status, t.swarm_state), (pb.GetTargetsResponse.WAIT, pb.RUNNING))
        self.assertGreater(t.retry_after_ms, 0)
        self.assertEqual([(p.pending_audits, p.disputed_claims) for p in self.particles(name)],
                         [(1, 0), (1, 0)])
        history = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
        self.assertEqual([(c.iteration, c.particle_id, c.reporter, c.candidate, c.verdict)
                          for c in history.audits],
                         [(0, 0, FIRM_A[0], True, pb.AUDIT_PENDING),
                          (0, 1, FIRM_B[0], True, pb.AUDIT_PENDING)])
        for c in history.audits:
            self.assertEqual((dict(c.audited_scores), c.auditor), ({}, ""))
            self.assertFalse(c.HasField("decided_time"))

        # The first claim by (iteration, particle_id); safe to repeat. The auditor downloads
        # its position.
        task = self.pull(name)
        self.assertEqual((task.status, task.swarm_state),
                         (pb.PullAuditTaskResponse.TASK, pb.RUNNING))
        self.assert_task(task.task, name, 0, 0, a, 0.5)
        self.assertEqual(self.pull(name), task)
        self.assertEqual(self.pull().task, task.task)  # any swarm: the same claim
        got = b"".join(m.chunk.data for m in self.download(a, who=AUDITOR))
        self.assertEqual(got, a_bytes)

        # Unknown claims: NOT_FOUND, naming nothing decided.
        for particle, k in ((0, 3), (5, 0), (-1, 0)):
            self.refused(Code.NOT_FOUND, self.agent.ReportAudit, pb.ReportAuditRequest(
                swarm=name, particle_id=particle, iteration=k, scores={"acc": 0.5}), AUDITOR)

        # Confirmed within tolerance (|0.53 - 0.5| <= 0.05): particle 0's claim counts.
        v = self.audit(name, 0, 0, 0.53)
        self.assertEqual((v.verdict, v.already_decided, v.reporter_quarantined),
                         (pb.AUDIT_CONFIRMED, False, False))
        again = self.audit(name, 0, 0, 0.1)  # another verdict's scores change nothing
        self.assertEqual((again.verdict, again.already_decided), (pb.AUDIT_CONFIRMED, True))
        st = self.status(name)
        self.assertEqual((st.global_best.particle_id, st.global_best.iteration,
                          st.global_best.blob_id, st.global_best.utility), (0, 0, a, 0.5))
        self.assertEqual(st.iteration, 0)  # particle 1's claim still holds the round
        self.assertEqual(self.targets(name, 0, 1, FIRM_A).status, pb.GetTargetsResponse.WAIT)

        # Disputed (|0.3 - 0.7| > 0.05): never g; an initial claim is recorded with the
        # auditor's utility. The round closes.
        task = self.pull(name)
        self.assert_task(task.task, name, 1, 0, b, 0.7)
        v = self.audit(name, 1, 0, 0.3)
        self.assertEqual((v.verdict, v.already_decided, v.reporter_quarantined),
                         (pb.AUDIT_DISPUTED, False, False))
        again = self.audit(name, 1, 0, 0.7)  # the claimed scores now: still disputed
        self.assertEqual((again.verdict, again.already_decided), (pb.AUDIT_DISPUTED, True))
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.particle_id, st.global_best.utility),
                         (0, 0, 0.5))
        self.assertEqual((st.global_worst.particle_id, st.global_worst.blob_id,
                          st.global_worst.utility), (1, b, 0.3))
        parts = self.particles(name)
        self.assertEqual([(p.pending_audits, p.disputed_claims) for p in parts],
                         [(0, 0), (0, 1)])
        self.assertEqual((parts[0].utility, parts[1].utility), (0.5, 0.3))
        none = self.pull(name)
        self.assertEqual(none.status, pb.PullAuditTaskResponse.NONE)
        self.assertGreater(none.retry_after_ms, 0)
        b_info = self.client(FIRM_B[0])
        self.assertEqual((b_info.audits_confirmed, b_info.audits_disputed, b_info.strikes,
                          b_info.reputation, b_info.quarantined), (0, 1, 1, 0.0, False))

        # ---- Iteration 1: particle 0 claims 0.9 (a new g): held; particle 1 claims 0.4
        # (no candidate, not sampled at rate 0): counts at once.
        for i, who in ((0, FIRM_A), (1, FIRM_B)):
            t = self.targets(name, i, 1, who)
            self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 1))
            self.assertEqual((t.global_best.particle_id, t.global_best.blob_id), (0, a))
        x1, x1_bytes, r = self.report_position(name, 0, 1, 0.9, FIRM_A, 0.3)
        self.assertTrue(r.audit_pending and r.upload_requested)  # the auditor needs it
        self.assertFalse(r.new_personal_best or r.new_global_best or r.new_global_worst)
        self.assertEqual(r.global_best_utility, 0.5)
        # Not uploaded yet: the server does not hold the position, so there is no task.
        self.assertEqual(self.pull(name).status, pb.PullAuditTaskResponse.NONE)
        dup = self.report(name, 0, 1, x1, 0.9)
        self.assertTrue(dup.duplicate and dup.audit_pending and dup.upload_requested)
        self.upload(x1_bytes, FIRM_A, swarm=name)
        dup = self.report(name, 0, 1, x1, 0.9)
        self.assertTrue(dup.duplicate and dup.audit_pending and not dup.upload_requested)
        y1, y1_bytes, r = self.report_position(name, 1, 1, 0.4, FIRM_B, 0.4)
        self.assertFalse(r.audit_pending)
        self.assertEqual(r.utility, 0.4)
        if r.upload_requested:
            self.upload(y1_bytes, FIRM_B, swarm=name)
        # The round waits for the verdict; g is unchanged.
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.particle_id, st.global_best.iteration),
                         (0, 0, 0))
        self.assertEqual(self.targets(name, 1, 2, FIRM_B).status, pb.GetTargetsResponse.WAIT)
        self.assertEqual(self.particles(name)[0].pending_audits, 1)

        task = self.pull(name)
        self.assert_task(task.task, name, 0, 1, x1, 0.9)
        self.assertEqual(b"".join(m.chunk.data for m in self.download(x1, who=AUDITOR)),
                         x1_bytes)
        # A failed audit decides nothing: the claim stays pending, the round waits.
        failed = self.audit(name, 0, 1, evaluation_failed=True, failure_reason="GPU lost")
        self.assertEqual((failed.verdict, failed.already_decided, failed.reporter_quarantined),
                         (pb.AUDIT_PENDING, False, False))
        self.assertEqual(self.pull(name).task, task.task)
        self.assertEqual(self.targets(name, 1, 2, FIRM_B).status, pb.GetTargetsResponse.WAIT)
        self.assertEqual(self.status(name).global_best.iteration, 0)
        self.assertEqual(self.particles(name)[0].pending_audits, 1)
        # Confirmed (|0.88 - 0.9| <= 0.05): the claim counts, as g and p_0, and the round
        # closes.
        v = self.audit(name, 0, 1, 0.88)
        self.assertEqual(v.verdict, pb.AUDIT_CONFIRMED)
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.particle_id, st.global_best.iteration,
                          st.global_best.blob_id, st.global_best.utility), (1, 0, 1, x1, 0.9))
        t = self.targets(name, 0, 2, FIRM_A)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 2))
        self.assertEqual((t.personal_best.iteration, t.personal_best.utility), (1, 0.9))
        self.assertEqual(t.global_best.blob_id, x1)

        # ---- Iteration 2: particle 1 claims 0.95 (a new g); the auditor finds 0.2. The
        # claim never counts: recorded as a failed evaluation, the particle keeps its
        # stale utility (0.4) and its p_i.
        self.assertEqual(self.targets(name, 1, 2, FIRM_B).status, pb.GetTargetsResponse.READY)
        y2, y2_bytes, r = self.report_position(name, 1, 2, 0.95, FIRM_B, 0.5)
        self.assertTrue(r.audit_pending and r.upload_requested)
        self.upload(y2_bytes, FIRM_B, swarm=name)
        _, x2_bytes, r = self.report_position(name, 0, 2, 0.6, FIRM_A, 0.6)
        self.assertFalse(r.audit_pending)
        if r.upload_requested:
            self.upload(x2_bytes, FIRM_A, swarm=name)
        task = self.pull(name)
        self.assert_task(task.task, name, 1, 2, y2, 0.95)
        v = self.audit(name, 1, 2, 0.2)
        self.assertEqual((v.verdict, v.reporter_quarantined), (pb.AUDIT_DISPUTED, False))
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_best.blob_id, st.global_best.utility),
                         (2, x1, 0.9))
        self.assertEqual(self.particles(name)[1].utility, 0.4)
        t = self.targets(name, 1, 3, FIRM_B)
        self.assertEqual((t.status, t.personal_best.iteration, t.personal_best.utility),
                         (pb.GetTargetsResponse.READY, 1, 0.4))
        b_info = self.client(FIRM_B[0])
        self.assertEqual((b_info.audits_disputed, b_info.strikes, b_info.quarantined),
                         (2, 2, False))

        # ---- Iteration 3: particle 1 claims 0.99, disputed: the third strike quarantines
        # firm-b (quarantine_after unset = 3).
        self.assertEqual(self.targets(name, 0, 3, FIRM_A).status, pb.GetTargetsResponse.READY)
        y3, y3_bytes, r = self.report_position(name, 1, 3, 0.99, FIRM_B, 0.7)
        self.assertTrue(r.audit_pending)
        self.upload(y3_bytes, FIRM_B, swarm=name)
        _, x3_bytes, r = self.report_position(name, 0, 3, 0.5, FIRM_A, 0.8)
        if r.upload_requested:
            self.upload(x3_bytes, FIRM_A, swarm=name)
        self.assert_task(self.pull(name).task, name, 1, 3, y3, 0.99)
        v = self.audit(name, 1, 3, 0.1)
        self.assertEqual((v.verdict, v.already_decided, v.reporter_quarantined),
                         (pb.AUDIT_DISPUTED, False, True))
        again = self.audit(name, 1, 3, 0.1)
        self.assertEqual((again.verdict, again.already_decided, again.reporter_quarantined),
                         (pb.AUDIT_DISPUTED, True, False))
        st = self.status(name)
        self.assertEqual((st.state, st.iteration, st.global_best.blob_id), (pb.RUNNING, 3, x1))

        # Refused on its next call, whichever it is, the message naming the quarantine.
        for rpc, request in (
                (self.agent.GetTargets, pb.GetTargetsRequest(swarm=name, particle_id=1,
                                                             iteration=4)),
                (self.agent.Heartbeat, pb.HeartbeatRequest(swarm=name)),
                (self.agent.GetAssignment, pb.GetAssignmentRequest(swarm=name))):
            self.refused(Code.PERMISSION_DENIED, rpc, request, FIRM_B, says="quarantine")
        self.assertEqual(self.targets(name, 0, 4, FIRM_A).status, pb.GetTargetsResponse.READY)
        b_info = self.client(FIRM_B[0])
        self.assertEqual((b_info.role, b_info.audits_confirmed, b_info.audits_disputed,
                          b_info.strikes, b_info.reputation, b_info.quarantined,
                          b_info.revoked), ("agent", 0, 3, 3, 0.0, True, False))
        a_info = self.client(FIRM_A[0])
        self.assertEqual((a_info.audits_confirmed, a_info.audits_disputed, a_info.strikes,
                          a_info.reputation, a_info.quarantined), (2, 0, 0, 1.0, False))

        # UnquarantineClient: admin only; NOT_FOUND for a client never seen; a reason of at
        # most 1024 bytes.
        for who in (FIRM_A, AUDITOR, FIRM_B):
            self.refused(Code.PERMISSION_DENIED, self.admin.UnquarantineClient,
                         pb.UnquarantineClientRequest(identity=FIRM_B[0]), who)
        self.refused(Code.NOT_FOUND, self.admin.UnquarantineClient,
                     pb.UnquarantineClientRequest(identity="never-seen"))
        self.refused(Code.INVALID_ARGUMENT, self.admin.UnquarantineClient,
                     pb.UnquarantineClientRequest(identity=FIRM_B[0], reason="r" * 1025))
        self.assertTrue(self.client(FIRM_B[0]).quarantined)  # the refusals changed nothing
        lifted = self.call(self.admin.UnquarantineClient, pb.UnquarantineClientRequest(
            identity=FIRM_B[0], reason="r" * 1024))
        # Served again; its strikes restart from 0, its audit counts stay.
        self.assertEqual((lifted.identity, lifted.role, lifted.audits_confirmed,
                          lifted.audits_disputed, lifted.strikes, lifted.reputation,
                          lifted.quarantined), (FIRM_B[0], "agent", 0, 3, 0, 0.0, False))
        self.assertEqual(self.call(self.admin.UnquarantineClient, pb.UnquarantineClientRequest(
            identity=FIRM_B[0])), lifted)  # idempotent
        self.assertEqual(self.client(FIRM_B[0]), lifted)

        # ---- Iteration 4, the last: firm-b is served again; no candidate, nothing held.
        t = self.targets(name, 1, 4, FIRM_B)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 4))
        for i, who, acc, value in ((0, FIRM_A, 0.3, 0.9), (1, FIRM_B, 0.35, 1.0)):
            _, data, r = self.report_position(name, i, 4, acc, who, value)
            self.assertFalse(r.audit_pending)
            if r.upload_requested:
                self.upload(data, who, swarm=name)
        st = self.status(name)
        self.assertEqual((st.state, st.termination_reason, st.iteration),
                         (pb.FINISHED, "max_iterations", 4))
        # g is the one confirmed candidate of iteration >= 1; no disputed claim became g.
        self.assertEqual((st.global_best.particle_id, st.global_best.iteration,
                          st.global_best.blob_id, st.global_best.utility), (0, 1, x1, 0.9))
        self.assertEqual(self.pull(name).swarm_state, pb.FINISHED)

        # ListParticles: particle 1's three disputed claims; nothing pending.
        self.assertEqual([(p.particle_id, p.pending_audits, p.disputed_claims)
                          for p in self.particles(name)], [(0, 0, 0), (1, 0, 3)])
        # GetHistory: every audited claim, ordered by (iteration, particle_id), with its
        # verdict, both score sets and the auditor.
        history = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
        want = [(0, 0, FIRM_A[0], pb.AUDIT_CONFIRMED, 0.5, 0.53),
                (0, 1, FIRM_B[0], pb.AUDIT_DISPUTED, 0.7, 0.3),
                (1, 0, FIRM_A[0], pb.AUDIT_CONFIRMED, 0.9, 0.88),
                (2, 1, FIRM_B[0], pb.AUDIT_DISPUTED, 0.95, 0.2),
                (3, 1, FIRM_B[0], pb.AUDIT_DISPUTED, 0.99, 0.1)]
        self.assertEqual([(c.iteration, c.particle_id, c.reporter, c.verdict,
                           dict(c.claimed_scores), dict(c.audited_scores))
                          for c in history.audits],
                         [(k, i, who, verdict, {"acc": claimed}, {"acc": audited})
                          for k, i, who, verdict, claimed, audited in want])
        for c in history.audits:
            self.assertTrue(c.candidate)  # every one held back as a candidate for g
            self.assertEqual(c.auditor, AUDITOR[0])
            self.assertTrue(c.HasField("decided_time") and c.decided_time.seconds > 0)
        self.assertEqual([e.iteration for e in history.entries], [0, 1, 2, 3, 4])


class AuditSampleTest(AuditWireTest):
    """AuditPolicy.sample_rate 1: every report that is no candidate for g is audited after
    the fact; it counts at once and is decided for the reporter's reputation only."""

    def test_sampled_reports_count_at_once(self):
        name = "sampled"
        self.create(audited_spec(name, policy(sample_rate=1, quarantine_after=1),
                                 hyperparameters=spec_pb.SwarmHyperparameters(
                                     pool_size=2, max_iterations=1)))
        a_bytes, b_bytes = wire.adapter(0.1), wire.adapter(0.2)
        a, b = wire.sha256_hex(a_bytes), wire.sha256_hex(b_bytes)
        self.upload(a_bytes, FIRM_A)
        self.upload(b_bytes, FIRM_B)
        self.join(name, [a], FIRM_A)
        self.assertEqual(list(self.join(name, [b], FIRM_B).assigned_particle_ids), [1])
        # Iteration 0: the first report is a candidate (no g yet), confirmed; the second is
        # no candidate (0.3 < 0.6): audited after the fact, it counts at once.
        self.assertTrue(self.report(name, 0, 0, a, 0.6).audit_pending)
        self.assertEqual(self.audit(name, 0, 0, 0.6).verdict, pb.AUDIT_CONFIRMED)
        r = self.report(name, 1, 0, b, 0.3, who=FIRM_B)
        self.assertTrue(r.accepted)
        self.assertFalse(r.audit_pending)
        self.assertTrue(r.new_global_worst)  # counted
        st = self.status(name)
        self.assertEqual((st.iteration, st.global_worst.particle_id), (0, 1))
        self.assertEqual(self.particles(name)[1].pending_audits, 1)
        # Iteration 1: a position that is no candidate, drawn for the sample (rate 1), is
        # asked for so the auditor can have it.
        self.assertEqual(self.targets(name, 1, 1, FIRM_B).status, pb.GetTargetsResponse.READY)
        y1 = wire.adapter(0.5)
        r = self.report(name, 1, 1, wire.sha256_hex(y1), 0.4, who=FIRM_B)
        self.assertFalse(r.audit_pending)
        self.assertTrue(r.upload_requested)
        self.upload(y1, FIRM_B, swarm=name)

        # The sampled claims, by (iteration, particle_id): (0, 1), then (1, 1). A dispute of
        # a claim that already counted quarantines all the same (quarantine_after 1).
        task = self.pull(name)
        self.assert_task(task.task, name, 1, 0, b, 0.3)
        v = self.audit(name, 1, 0, 0.3)
        self.assertEqual(v.verdict, pb.AUDIT_CONFIRMED)
        task = self.pull(name)
        self.assert_task(task.task, name, 1, 1, wire.sha256_hex(y1), 0.4)
        v = self.audit(name, 1, 1, 0.9)
        self.assertEqual((v.verdict, v.reporter_quarantined), (pb.AUDIT_DISPUTED, True))
        self.refused(Code.PERMISSION_DENIED, self.agent.Heartbeat,
                     pb.HeartbeatRequest(swarm=name), FIRM_B, says="quarantine")
        info = self.client(FIRM_B[0])
        self.assertEqual((info.audits_confirmed, info.audits_disputed, info.strikes,
                          info.reputation, info.quarantined), (1, 1, 1, 0.5, True))
        # What counted stays counted: particle 1's sampled report is its latest utility.
        self.assertEqual([(p.utility, p.pending_audits, p.disputed_claims)
                          for p in self.particles(name)], [(0.6, 0, 0), (0.4, 0, 1)])
        history = self.call(self.admin.GetHistory, pb.GetHistoryRequest(swarm=name))
        self.assertEqual([(c.iteration, c.particle_id, c.candidate, c.verdict)
                          for c in history.audits],
                         [(0, 0, True, pb.AUDIT_CONFIRMED), (0, 1, False, pb.AUDIT_CONFIRMED),
                          (1, 1, False, pb.AUDIT_DISPUTED)])


class AuditAsyncTest(AuditWireTest):
    """ASYNC mode: a held-back claim holds only its particle's next targets."""

    def test_only_the_claims_particle_waits(self):
        name = "audited-async"
        self.create(audited_spec(name, mode=spec_pb.ASYNC,
                                 hyperparameters=spec_pb.SwarmHyperparameters(
                                     pool_size=2, max_iterations=3)))
        a_bytes, b_bytes = wire.adapter(0.1), wire.adapter(0.2)
        a, b = wire.sha256_hex(a_bytes), wire.sha256_hex(b_bytes)
        self.upload(a_bytes, FIRM_A)
        self.upload(b_bytes, FIRM_B)
        self.join(name, [a], FIRM_A)
        self.assertEqual(list(self.join(name, [b], FIRM_B).assigned_particle_ids), [1])
        self.assertTrue(self.report(name, 0, 0, a, 0.5).audit_pending)
        self.assertEqual(self.audit(name, 0, 0, 0.5).verdict, pb.AUDIT_CONFIRMED)
        self.assertFalse(self.report(name, 1, 0, b, 0.4, who=FIRM_B).audit_pending)

        self.assertEqual(self.targets(name, 0, 1, FIRM_A).status, pb.GetTargetsResponse.READY)
        x1 = wire.adapter(0.3)
        r = self.report(name, 0, 1, wire.sha256_hex(x1), 0.9)
        self.assertTrue(r.audit_pending and r.upload_requested)
        self.upload(x1, FIRM_A, swarm=name)
        # Particle 0's next targets wait for the verdict; particle 1 goes on.
        t = self.targets(name, 0, 2, FIRM_A)
        self.assertEqual(t.status, pb.GetTargetsResponse.WAIT)
        self.assertGreater(t.retry_after_ms, 0)
        self.assertEqual(self.targets(name, 1, 1, FIRM_B).status, pb.GetTargetsResponse.READY)
        r = self.report(name, 1, 1, wire.sha256_hex(wire.adapter(0.4)), 0.45, who=FIRM_B)
        self.assertFalse(r.audit_pending)
        t = self.targets(name, 1, 2, FIRM_B)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 2))
        self.assertEqual(t.global_best.iteration, 0)  # the claim does not count yet
        self.assertEqual(self.status(name).global_best.iteration, 0)

        self.assertEqual(self.audit(name, 0, 1, 0.9).verdict, pb.AUDIT_CONFIRMED)
        t = self.targets(name, 0, 2, FIRM_A)
        self.assertEqual((t.status, t.iteration), (pb.GetTargetsResponse.READY, 2))
        self.assertEqual((t.personal_best.iteration, t.global_best.iteration), (1, 1))
        st = self.status(name)
        self.assertEqual((st.global_best.particle_id, st.global_best.iteration,
                          st.global_best.utility), (0, 1, 0.9))

class AuditOrderTest(AuditWireTest):
    """Which claim PullAuditTask hands out: in the named swarm, the first by (iteration,
    particle_id), whatever order they were reported in; with no swarm named, the first
    swarm by name that has one."""

    def test_the_order_of_tasks(self):
        late, early = "zz-order", "aa-order"
        zz_a, zz_b = self.running_swarm_audited(late)
        # Particle 1 reports first; both are candidates for g (the engine has seen neither).
        self.assertTrue(self.report(late, 1, 0, zz_b, 0.7, who=FIRM_B).audit_pending)
        self.assertTrue(self.report(late, 0, 0, zz_a, 0.5).audit_pending)
        self.assert_task(self.pull(late).task, late, 0, 0, zz_a, 0.5)
        self.assert_task(self.pull().task, late, 0, 0, zz_a, 0.5)
        # A swarm earlier by name, whose claim came later: first when no swarm is named.
        self.create(audited_spec(early))
        a, b = wire.adapter(0.3), wire.adapter(0.4)
        self.upload(a, FIRM_A)
        self.upload(b, FIRM_B)
        self.join(early, [wire.sha256_hex(a)], FIRM_A)
        self.assertEqual(list(self.join(early, [wire.sha256_hex(b)],
                                        FIRM_B).assigned_particle_ids), [1])
        self.assertTrue(self.report(early, 1, 0, wire.sha256_hex(b), 0.6,
                                    who=FIRM_B).audit_pending)
        anywhere = self.pull()
        self.assertEqual(anywhere.swarm_state, pb.SWARM_STATE_UNSPECIFIED)  # none named
        self.assert_task(anywhere.task, early, 1, 0, wire.sha256_hex(b), 0.6)
        self.assert_task(self.pull(late).task, late, 0, 0, zz_a, 0.5)
        # Decided in that order, each swarm's claims run out in turn.
        self.assertEqual(self.audit(early, 1, 0, 0.6).verdict, pb.AUDIT_CONFIRMED)
        self.assert_task(self.pull().task, late, 0, 0, zz_a, 0.5)
        self.assertEqual(self.audit(late, 0, 0, 0.5).verdict, pb.AUDIT_CONFIRMED)
        self.assert_task(self.pull().task, late, 1, 0, zz_b, 0.7)
        self.assertEqual(self.audit(late, 1, 0, 0.7).verdict, pb.AUDIT_CONFIRMED)
        self.assertEqual(self.pull().status, pb.PullAuditTaskResponse.NONE)
        self.assertEqual(self.pull(early).swarm_state, pb.RUNNING)

if __name__ == "__main__":
    unittest.main(verbosity=2)
