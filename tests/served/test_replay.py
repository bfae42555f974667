#!/usr/bin/python3
"""Served test of request_id idempotency across callers (the change room, issue 14),
against the real `trstctl serve` with a real PostgreSQL, called with grpcio.

The attack it reproduces: a narrow token reuses the admin's request_id. Before the change
room the narrow call got the admin's stored reply (a policy document its own GetPolicy is
denied, another secret's metadata and labels) and its own request silently did not run.
Now the key is (tenant, principal, method, request_id): the narrow call runs as itself
or is refused on its own merits, and never sees the admin's reply. Also: a retry with the
same bytes gets the first reply byte for byte and nothing runs twice; the same request_id
for a different request is INVALID_ARGUMENT; every mutating service (Policy, Secrets, CA,
tokens) follows the same rule.

usage: test_replay.py --trstctl PATH
"""

import argparse
import json
import sys

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import ca_pb2  # noqa: E402
import ca_pb2_grpc  # noqa: E402
import policy_pb2  # noqa: E402
import policy_pb2_grpc  # noqa: E402
import secrets_pb2  # noqa: E402
import secrets_pb2_grpc  # noqa: E402

NARROW_DOC = json.dumps({"rules": [
    {"effect": "allow", "actions": ["Secrets.*"], "resources": ["secret/narrow/**"]},
    {"effect": "allow", "actions": ["Policy.PutPolicy"], "resources": ["policy/narrow-own"]},
    {"effect": "allow", "actions": ["CA.CreateOwner"], "resources": ["owner/*"]},
]})


def code_of(fn):
    """Runs fn; returns (status code, details) of its RpcError, or (OK, reply)."""
    try:
        return grpc.StatusCode.OK, fn()
    except grpc.RpcError as e:
        return e.code(), e.details()


class ReplayTest:
    def __init__(self, server):
        self.server = server
        base = harness.channel(server.addr, 'plaintext')
        self.admin_ch = harness.with_token(base, server.bootstrap_token())
        self.admin_pol = policy_pb2_grpc.PolicyStub(self.admin_ch)
        self.admin_sec = secrets_pb2_grpc.SecretsStub(self.admin_ch)
        self.admin_ca = ca_pb2_grpc.CAStub(self.admin_ch)
        self.admin_pol.PutPolicy(policy_pb2.PutPolicyRequest(name='narrow', document=NARROW_DOC),
                                 timeout=10)
        tok = self.admin_pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='narrow', policies=['narrow']), timeout=10)
        self.narrow_id = tok.token_id
        self.narrow_ch = harness.with_token(base, tok.token)
        self.narrow_pol = policy_pb2_grpc.PolicyStub(self.narrow_ch)
        self.narrow_sec = secrets_pb2_grpc.SecretsStub(self.narrow_ch)
        self.narrow_ca = ca_pb2_grpc.CAStub(self.narrow_ch)

    def policy_reply_is_not_leaked(self):
        doc = json.dumps({"description": "admin only",
                          "rules": [{"effect": "allow", "actions": ["Audit.*"],
                                     "resources": ["audit"]}]})
        first = self.admin_pol.PutPolicy(policy_pb2.PutPolicyRequest(
            name='admin-secret-doc', document=doc, request_id='rid-policy-1'), timeout=10)
        # the narrow token may not read that policy
        code, _ = code_of(lambda: self.narrow_pol.GetPolicy(
            policy_pb2.GetPolicyRequest(name='admin-secret-doc'), timeout=10))
        expect(code == grpc.StatusCode.PERMISSION_DENIED, 'narrow GetPolicy: %s' % code)
        # the same request_id, the narrow token's own (allowed) request: it runs as itself
        own = json.dumps({"rules": [{"effect": "allow", "actions": ["Guard.*"],
                                     "resources": ["guard"]}]})
        code, r = code_of(lambda: self.narrow_pol.PutPolicy(policy_pb2.PutPolicyRequest(
            name='narrow-own', document=own, request_id='rid-policy-1'), timeout=10))
        expect(code == grpc.StatusCode.OK, 'narrow PutPolicy with a reused request_id: %s %s'
               % (code, r))
        expect(r.name == 'narrow-own' and r.document == own,
               'the narrow call got another reply: %r' % r)
        expect('admin only' not in r.document, 'the admin\'s document leaked')
        got = self.admin_pol.GetPolicy(policy_pb2.GetPolicyRequest(name='narrow-own'),
                                       timeout=10)
        expect(got.document == own, 'the narrow request did not run: %r' % got.document)
        # the same request_id for a request the narrow token may not make: its own denial
        code, msg = code_of(lambda: self.narrow_pol.PutPolicy(policy_pb2.PutPolicyRequest(
            name='admin-secret-doc', document=doc, request_id='rid-policy-1'), timeout=10))
        expect(code == grpc.StatusCode.PERMISSION_DENIED,
               'narrow PutPolicy of the admin\'s name: %s %s' % (code, msg))
        # the admin's retry still gets the admin's reply, byte for byte
        again = self.admin_pol.PutPolicy(policy_pb2.PutPolicyRequest(
            name='admin-secret-doc', document=doc, request_id='rid-policy-1'), timeout=10)
        expect(again.SerializeToString() == first.SerializeToString(),
               'admin retry: %r != %r' % (again, first))

    def secret_reply_is_not_leaked(self):
        first = self.admin_sec.CreateSecret(secrets_pb2.CreateSecretRequest(
            name='prod/db/password', value=b'admin-value-1',
            labels={'owner': 'payments-team'}, request_id='rid-secret-1'), timeout=10)
        code, r = code_of(lambda: self.narrow_sec.CreateSecret(secrets_pb2.CreateSecretRequest(
            name='narrow/own', value=b'narrow-value', request_id='rid-secret-1'), timeout=10))
        expect(code == grpc.StatusCode.OK, 'narrow CreateSecret: %s %s' % (code, r))
        expect(r.name == 'narrow/own' and 'owner' not in r.labels,
               'the narrow call got the admin\'s metadata: %r' % r)
        v = self.narrow_sec.GetSecret(secrets_pb2.GetSecretRequest(name='narrow/own'),
                                      timeout=10)
        expect(v.value == b'narrow-value', 'the narrow secret was not created')
        # the admin's retry: its own reply, byte for byte, and no second version
        again = self.admin_sec.CreateSecret(secrets_pb2.CreateSecretRequest(
            name='prod/db/password', value=b'admin-value-1',
            labels={'owner': 'payments-team'}, request_id='rid-secret-1'), timeout=10)
        expect(again.SerializeToString() == first.SerializeToString(),
               'admin retry differs: %r / %r' % (again, first))

    def same_bytes_replay_and_different_request_refused(self):
        req = secrets_pb2.RotateSecretRequest(name='narrow/own', value=b'rotated-1',
                                              request_id='rid-rotate-1')
        first = self.narrow_sec.RotateSecret(req, timeout=10)
        for _ in range(3):
            again = self.narrow_sec.RotateSecret(req, timeout=10)
            expect(again.SerializeToString() == first.SerializeToString(),
                   'retry differs: %r / %r' % (again, first))
        v = self.narrow_sec.GetSecret(secrets_pb2.GetSecretRequest(name='narrow/own'),
                                      timeout=10)
        expect(v.version == first.version == 2, 'rotated more than once: %r' % v.version)
        code, msg = code_of(lambda: self.narrow_sec.RotateSecret(
            secrets_pb2.RotateSecretRequest(name='narrow/own', value=b'other',
                                            request_id='rid-rotate-1'), timeout=10))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, 'reuse for another request: %s' % code)
        expect('request_id rid-rotate-1 was used for a different request' in msg,
               'message: %r' % msg)
        expect(b'other' not in msg.encode() and 'rotated-1' not in msg,
               'a value in the message: %r' % msg)

    def ca_and_tokens_follow_the_same_rule(self):
        a = self.admin_ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='team', name='admin-team', request_id='rid-owner-1'), timeout=10)
        n = self.narrow_ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='team', name='narrow-team', request_id='rid-owner-1'), timeout=10)
        expect(n.id != a.id and n.name == 'narrow-team', 'narrow owner: %r' % n)
        n2 = self.narrow_ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='team', name='narrow-team', request_id='rid-owner-1'), timeout=10)
        expect(n2.SerializeToString() == n.SerializeToString(), 'owner retry differs')
        code, _ = code_of(lambda: self.narrow_ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='team', name='narrow-team-2', request_id='rid-owner-1'), timeout=10))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, 'owner reuse: %s' % code)
        # tokens: a retry names the token it created (the token is shown once)
        t = self.admin_pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='ci', policies=['narrow'], request_id='rid-token-1'), timeout=10)
        code, msg = code_of(lambda: self.admin_pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='ci', policies=['narrow'], request_id='rid-token-1'), timeout=10))
        expect(code == grpc.StatusCode.ALREADY_EXISTS and t.token_id in msg,
               'token retry: %s %s' % (code, msg))
        expect(t.token not in msg, 'the token text in a message')
        r1 = self.admin_pol.RevokeToken(policy_pb2.RevokeTokenRequest(
            id=t.token_id, request_id='rid-revoke-1'), timeout=10)
        r2 = self.admin_pol.RevokeToken(policy_pb2.RevokeTokenRequest(
            id=t.token_id, request_id='rid-revoke-1'), timeout=10)
        expect(r1.id == r2.id == t.token_id, 'revoke retry: %r %r' % (r1, r2))
        code, _ = code_of(lambda: self.admin_pol.RevokeToken(policy_pb2.RevokeTokenRequest(
            id=self.narrow_id, request_id='rid-revoke-1'), timeout=10))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, 'revoke reuse: %s' % code)

    def bad_request_id_is_refused(self):
        code, msg = code_of(lambda: self.narrow_sec.CreateSecret(
            secrets_pb2.CreateSecretRequest(name='narrow/x', value=b'v',
                                            request_id='has space'), timeout=10))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT and 'request_id' in msg,
               'bad request_id: %s %s' % (code, msg))
        code, _ = code_of(lambda: self.narrow_sec.GetSecret(
            secrets_pb2.GetSecretRequest(name='narrow/x'), timeout=10))
        expect(code == grpc.StatusCode.NOT_FOUND, 'the refused create left a secret: %s' % code)
        code, msg = code_of(lambda: self.narrow_sec.CreateSecret(
            secrets_pb2.CreateSecretRequest(name='narrow/x', value=b'v',
                                            request_id='r' * 129), timeout=10))
        expect(code == grpc.StatusCode.INVALID_ARGUMENT and '129 bytes' in msg,
               'long request_id: %s %s' % (code, msg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    env = {'TRSTCTL_SERVER_TLS_MODE': 'disabled', 'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'}
    with harness.Server(args.trstctl, env=env, start_timeout=60) as server:
        t = ReplayTest(server)
        c = harness.Checks('replay', server)
        c.run('a reused request_id never returns another caller\'s policy',
              t.policy_reply_is_not_leaked)
        c.run('a reused request_id never returns another caller\'s secret',
              t.secret_reply_is_not_leaked)
        c.run('same bytes: the first reply; other bytes: INVALID_ARGUMENT',
              t.same_bytes_replay_and_different_request_refused)
        c.run('CA and tokens follow the same rule', t.ca_and_tokens_follow_the_same_rule)
        c.run('a bad request_id is refused and leaves nothing', t.bad_request_id_is_refused)
        return c.finish()


if __name__ == '__main__':
    sys.exit(main())
