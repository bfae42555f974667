#!/usr/bin/python3
"""Served test of authorization hardening (issue 15) against the real `trstctl serve` with a
real PostgreSQL: each check replays an attack that used to work and expects it to fail.

- IP SANs: a token limited to `dns_names: ["*.internal"]` no longer gets a certificate for
  an identity carrying `IP Address:8.8.8.8`; an `ip_addresses` condition allows its CIDRs.
- List methods filter per item: with `allow secret/**` and `deny secret/prod/**`, no prefix
  of ListSecrets (`pro`, `p`, `prod`, ``) shows a prod secret, and paging still walks all.
- Tokens form a tree: a child outliving its parent or holding a policy the parent lacks is
  PERMISSION_DENIED; revoking a parent revokes its children on a second server; a token
  cannot PutPolicy/DeletePolicy a policy bound to itself.
- A NUL byte or invalid UTF-8 in a string field is INVALID_ARGUMENT naming the field and
  creates nothing; VerifyChain from past the head is INVALID_ARGUMENT.

usage: test_authz_abuse.py --trstctl PATH [--source-root DIR]
"""

import json
import sys
import time

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import audit_pb2  # noqa: E402
import ca_pb2  # noqa: E402
import policy_pb2  # noqa: E402
import secrets_pb2  # noqa: E402
from test_policy import PolicyTest, main  # noqa: E402

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNAUTH = grpc.StatusCode.UNAUTHENTICATED


class Client:
    """Unary calls on one channel as one token: call() returns (code, reply, details)."""

    def __init__(self, ch, token):
        self.ch = ch
        self.bearer = token

    def call(self, method, req, resp_cls, timeout=15):
        fn = self.ch.unary_unary(method, request_serializer=lambda m: m
                                 if isinstance(m, bytes) else m.SerializeToString(),
                                 response_deserializer=resp_cls.FromString)
        try:
            md = [('authorization', 'Bearer ' + self.bearer)] if self.bearer else None
            r = fn(req, timeout=timeout, metadata=md)
            return OK, r, ''
        except grpc.RpcError as e:
            return e.code(), None, e.details()

    def ok(self, method, req, resp_cls):
        code, r, det = self.call(method, req, resp_cls)
        expect(code == OK, '%s: %s %s' % (method, code, det))
        return r

    def put_policy(self, name, rules):
        return self.call('/trstctl.v1.Policy/PutPolicy',
                         policy_pb2.PutPolicyRequest(name=name,
                                                     document=json.dumps({'rules': rules})),
                         policy_pb2.PolicyDocument)

    def token(self, policies, ttl=0, name='t'):
        return self.call('/trstctl.v1.Policy/CreateToken',
                         policy_pb2.CreateTokenRequest(name=name, policies=policies,
                                                       ttl_seconds=ttl),
                         policy_pb2.CreateTokenResponse)


class AbuseTest(PolicyTest):
    def run(self):
        checks = harness.Checks('authz-abuse')
        a = self.server()
        checks.server = a
        ch = grpc.insecure_channel(a.addr)
        admin = Client(ch, self.bootstrap_token(a))
        admin_id = [t.id for t in admin.ok('/trstctl.v1.Policy/ListTokens',
                                           policy_pb2.ListTokensRequest(),
                                           policy_pb2.ListTokensResponse).tokens
                    if t.name == 'bootstrap-admin'][0]

        def as_token(policies, ttl=0):
            code, r, det = admin.token(policies, ttl)
            expect(code == OK, 'CreateToken %r: %s %s' % (policies, code, det))
            return Client(ch, r.token), r.token_id

        def ip_sans():
            owner = admin.ok('/trstctl.v1.CA/CreateOwner',
                             ca_pb2.CreateOwnerRequest(kind='workload', name='ipsan'),
                             ca_pb2.Owner)
            issue = ['CA.TransitionIdentity', 'CA.IssueCertificate']
            expect(admin.put_policy('dns-only', [
                {'effect': 'allow', 'actions': issue, 'resources': ['identity/*'],
                 'conditions': {'dns_names': ['*.internal']}},
                {'effect': 'allow', 'actions': ['CA.CreateIdentity'],
                 'resources': ['identity/*']}])[0] == OK, 'put dns-only')
            expect(admin.put_policy('ten-net', [
                {'effect': 'allow', 'actions': issue, 'resources': ['identity/*'],
                 'conditions': {'dns_names': ['*.internal'], 'ip_addresses': ['10.0.0.0/8']}},
                ])[0] == OK, 'put ten-net')
            code, _, det = admin.put_policy('bad-cidr', [
                {'effect': 'allow', 'actions': issue, 'resources': ['identity/*'],
                 'conditions': {'ip_addresses': ['8.8.8.8']}}])
            expect(code == INVALID and 'ip_addresses[0]' in det, 'bad CIDR: %s %s'
                   % (code, det))
            dns, _ = as_token(['dns-only'])

            def identity(name, ips):
                return dns.ok('/trstctl.v1.CA/CreateIdentity',
                              ca_pb2.CreateIdentityRequest(name=name, owner_id=owner.id,
                                                           dns_names=['web.internal'],
                                                           ip_addresses=ips),
                              ca_pb2.Identity)

            evil = identity('evil', ['8.8.8.8'])
            for method, req in (
                    ('/trstctl.v1.CA/TransitionIdentity',
                     ca_pb2.TransitionIdentityRequest(id=evil.id, to='issued')),
                    ('/trstctl.v1.CA/IssueCertificate',
                     ca_pb2.IssueCertificateRequest(identity_id=evil.id))):
                code, _, det = dns.call(method, req, ca_pb2.Identity)
                expect(code == DENIED, '%s with IP 8.8.8.8 under dns_names only: %s %s'
                       % (method, code, det))
            plain = identity('plain', [])
            dns.ok('/trstctl.v1.CA/TransitionIdentity',
                   ca_pb2.TransitionIdentityRequest(id=plain.id, to='issued'), ca_pb2.Identity)
            ten, _ = as_token(['ten-net'])
            inside = identity('inside', ['10.1.2.3'])
            ten.ok('/trstctl.v1.CA/TransitionIdentity',
                   ca_pb2.TransitionIdentityRequest(id=inside.id, to='issued'), ca_pb2.Identity)
            code, _, det = ten.call('/trstctl.v1.CA/TransitionIdentity',
                                    ca_pb2.TransitionIdentityRequest(id=evil.id, to='issued'),
                                    ca_pb2.Identity)
            expect(code == DENIED, '8.8.8.8 outside 10.0.0.0/8: %s %s' % (code, det))
            got = admin.ok('/trstctl.v1.CA/GetIdentity', ca_pb2.GetIdentityRequest(id=evil.id),
                           ca_pb2.Identity)
            expect(got.state == 'requested', 'refused identity moved to %s' % got.state)

            # a conditional CreateIdentity is checked with the identity's SANs too
            expect(admin.put_policy('create-internal', [
                {'effect': 'allow', 'actions': ['CA.CreateIdentity'],
                 'resources': ['identity/*'], 'conditions': {'dns_names': ['*.internal']}}]
                )[0] == OK, 'put create-internal')
            cre, _ = as_token(['create-internal'])
            for dns_names, ips in ((['evil.example.com'], []), (['web.internal'], ['8.8.8.8'])):
                code, _, det = cre.call('/trstctl.v1.CA/CreateIdentity',
                                        ca_pb2.CreateIdentityRequest(
                                            name='c-%d' % len(ips), owner_id=owner.id,
                                            dns_names=dns_names, ip_addresses=ips),
                                        ca_pb2.Identity)
                expect(code == DENIED, 'create %r %r: %s %s' % (dns_names, ips, code, det))
            cre.ok('/trstctl.v1.CA/CreateIdentity',
                   ca_pb2.CreateIdentityRequest(name='c-ok', owner_id=owner.id,
                                                dns_names=['web.internal']), ca_pb2.Identity)

        def list_filters():
            for name in ('prod/db/password', 'prod/api', 'product/x', 'pub/a', 'pub/b'):
                admin.ok('/trstctl.v1.Secrets/CreateSecret',
                         secrets_pb2.CreateSecretRequest(name=name, value=b'v',
                                                         labels={'env': 'x'}),
                         secrets_pb2.SecretMeta)
            for name in ('visible-owner', 'hidden-owner'):
                admin.ok('/trstctl.v1.CA/CreateOwner',
                         ca_pb2.CreateOwnerRequest(kind='team', name=name), ca_pb2.Owner)
            code, _, det = admin.put_policy('no-prod', [
                {'effect': 'allow', 'actions': ['Secrets.*'], 'resources': ['secret/**']},
                {'effect': 'deny', 'actions': ['Secrets.*'], 'resources': ['secret/prod/**']},
                {'effect': 'allow', 'actions': ['CA.ListOwners', 'Policy.ListPolicies',
                                                'Policy.ListTokens'], 'resources': ['*']},
                {'effect': 'deny', 'actions': ['CA.ListOwners'],
                 'resources': ['owner/hidden-*']},
                {'effect': 'deny', 'actions': ['Policy.ListPolicies'],
                 'resources': ['policy/admin', 'policy/dns-*']},
                {'effect': 'deny', 'actions': ['Policy.ListTokens'],
                 'resources': ['token/%s' % admin_id]}])
            expect(code == OK, 'put no-prod: %s %s' % (code, det))
            c, _ = as_token(['no-prod'])
            code, _, _ = c.call('/trstctl.v1.Secrets/ListSecrets',
                                secrets_pb2.ListSecretsRequest(prefix='prod/'),
                                secrets_pb2.ListSecretsResponse)
            expect(code == DENIED, 'prefix prod/: %s' % code)

            def walk(prefix, size):
                names, token, pages = [], '', 0
                while True:
                    r = c.ok('/trstctl.v1.Secrets/ListSecrets',
                             secrets_pb2.ListSecretsRequest(prefix=prefix, page_size=size,
                                                            page_token=token),
                             secrets_pb2.ListSecretsResponse)
                    names += [m.name for m in r.secrets]
                    pages += 1
                    expect(pages < 20, 'paging does not end')
                    if not r.next_page_token:
                        return names
                    token = r.next_page_token

            for prefix in ('pro', 'p', 'prod', ''):
                for size in (0, 1, 2):
                    names = walk(prefix, size)
                    expect(not [n for n in names if n.startswith('prod/')],
                           'prefix %r page_size %d lists %r' % (prefix, size, names))
                    want = [n for n in ('product/x', 'pub/a', 'pub/b') if n.startswith(prefix)]
                    expect(sorted(names) == want, 'prefix %r page_size %d: %r, want %r'
                           % (prefix, size, names, want))
            owners = c.ok('/trstctl.v1.CA/ListOwners', ca_pb2.ListOwnersRequest(),
                          ca_pb2.ListOwnersResponse).owners
            names = [o.name for o in owners]
            expect('visible-owner' in names and 'hidden-owner' not in names,
                   'ListOwners: %r' % names)
            pols = [p.name for p in c.ok('/trstctl.v1.Policy/ListPolicies',
                                         policy_pb2.ListPoliciesRequest(),
                                         policy_pb2.ListPoliciesResponse).policies]
            expect('no-prod' in pols and 'admin' not in pols and 'dns-only' not in pols,
                   'ListPolicies: %r' % pols)
            toks = [t.id for t in c.ok('/trstctl.v1.Policy/ListTokens',
                                       policy_pb2.ListTokensRequest(),
                                       policy_pb2.ListTokensResponse).tokens]
            expect(admin_id not in toks and len(toks) >= 1, 'ListTokens: %r' % toks)

        def token_tree():
            rules = [{'effect': 'allow', 'actions': ['Policy.*'], 'resources': ['*']}]
            expect(admin.put_policy('tree', rules)[0] == OK, 'put tree')
            expect(admin.put_policy('other', rules)[0] == OK, 'put other')
            p, p_id = as_token(['tree'], ttl=60)
            for policies, ttl, why in ((['tree'], 0, 'ttl_seconds'),
                                       (['tree'], 3600, 'ttl_seconds'),
                                       (['admin'], 30, 'policy admin'),
                                       (['tree', 'other'], 30, 'policy other')):
                code, _, det = p.token(policies, ttl)
                expect(code == DENIED and why in det and p_id in det,
                       'child %r ttl %d of a 60 s parent: %s %s' % (policies, ttl, code, det))
            code, child, det = p.token(['tree'], 30)
            expect(code == OK, 'a child within its parent: %s %s' % (code, det))
            parent_exp = [t.expire_time.seconds for t in admin.ok(
                '/trstctl.v1.Policy/ListTokens', policy_pb2.ListTokensRequest(page_size=1000),
                policy_pb2.ListTokensResponse).tokens if t.id == p_id][0]
            expect(0 < child.expire_time.seconds <= parent_exp,
                   'child expires %d, parent %d' % (child.expire_time.seconds, parent_exp))

            # no self-escalation: p may edit policies, but not the one it holds
            for method, req in (('/trstctl.v1.Policy/PutPolicy', policy_pb2.PutPolicyRequest(
                    name='tree', document=json.dumps({'rules': rules * 2}))),
                                ('/trstctl.v1.Policy/DeletePolicy',
                                 policy_pb2.DeletePolicyRequest(name='tree'))):
                code, _, det = p.call(method, req, policy_pb2.PolicyDocument)
                expect(code == DENIED and 'tree' in det and 'admin' in det,
                       '%s of its own policy: %s %s' % (method, code, det))
            events = admin.ok('/trstctl.v1.Audit/ListEvents',
                              audit_pb2.ListEventsRequest(type_prefix='policy.denied',
                                                          page_size=1000),
                              audit_pb2.ListEventsResponse).events
            denied = [(e.actor, e.resource) for e in events]
            for res in ('policy/tree', 'token/*'):
                expect((p_id, res) in denied, 'no policy.denied record for %s by %s: %r'
                       % (res, p_id, denied))
            expect(p.put_policy('other', rules)[0] == OK, 'put another policy')
            expect(admin.put_policy('tree', rules)[0] == OK, 'admin puts tree')

            # revoking a parent revokes its descendants, on every server
            q, q_id = as_token(['tree'])
            code, c2, det = q.token(['tree'])
            expect(code == OK, 'child of q: %s %s' % (code, det))
            code, g, det = Client(ch, c2.token).token(['tree'])
            expect(code == OK, 'grandchild of q: %s %s' % (code, det))
            b = self.server()
            ch_b = grpc.insecure_channel(b.addr)
            list_req = policy_pb2.ListTokensRequest()
            on_b = [Client(ch_b, t) for t in (c2.token, g.token)]
            for c in on_b:
                code, _, det = c.call('/trstctl.v1.Policy/ListTokens', list_req,
                                      policy_pb2.ListTokensResponse)
                expect(code == OK, 'descendant on server B: %s %s' % (code, det))
            admin.ok('/trstctl.v1.Policy/RevokeToken', policy_pb2.RevokeTokenRequest(id=q_id),
                     policy_pb2.Token)
            start = time.monotonic()
            for c in on_b:
                while c.call('/trstctl.v1.Policy/ListTokens', list_req,
                             policy_pb2.ListTokensResponse)[0] != UNAUTH:
                    expect(time.monotonic() - start < 1.0,
                           'server B accepts a descendant of a revoked token after 1 s')
                    time.sleep(0.02)
            toks = {t.id: t for t in admin.ok(
                '/trstctl.v1.Policy/ListTokens', policy_pb2.ListTokensRequest(page_size=1000),
                policy_pb2.ListTokensResponse).tokens}
            expect(toks[c2.token_id].revoked and toks[g.token_id].revoked and
                   not toks[p_id].revoked, 'revoked flags: %r' % toks)
            expect(toks[g.token_id].parent_id == c2.token_id and
                   toks[c2.token_id].parent_id == q_id and toks[q_id].parent_id == admin_id
                   and toks[admin_id].parent_id == '', 'parents: %r' % toks)
            ch_b.close()

        def bad_strings():
            def varint(n):
                out = b''
                while True:
                    out += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
                    n >>= 7
                    if not n:
                        return out

            def field(num, data):
                return varint(num << 3 | 2) + varint(len(data)) + data

            cases = (
                ('name', field(2, b'nul\x00tail') + field(3, b'v')),
                ('name', field(2, b'bad-\xc3\x28') + field(3, b'v')),
                ('labels.value', field(2, b'labeled') + field(3, b'v') +
                 field(4, field(1, b'k') + field(2, b'a\x00b'))),
                ('request_id', field(1, b'r\x00') + field(2, b'rid') + field(3, b'v')))
            for path, wire in cases:
                code, _, det = admin.call('/trstctl.v1.Secrets/CreateSecret', wire,
                                          secrets_pb2.SecretMeta)
                expect(code == INVALID and det.startswith(path + ':') and 'UTF-8' in det
                       and 'NUL' in det, '%r: %s %s' % (wire, code, det))
            names = [m.name for m in admin.ok(
                '/trstctl.v1.Secrets/ListSecrets', secrets_pb2.ListSecretsRequest(),
                secrets_pb2.ListSecretsResponse).secrets]
            for bad in ('nul', 'bad-', 'labeled', 'rid'):
                expect(bad not in names, 'a refused request created %r: %r' % (bad, names))
            code, _, det = admin.call('/trstctl.v1.CA/CreateOwner',
                                      ca_pb2.CreateOwnerRequest(kind='team', name='a\x00b'),
                                      ca_pb2.Owner)
            expect(code == INVALID and det.startswith('name:'), 'owner a\\0b: %s %s'
                   % (code, det))
            # the bytes field of a secret's value may hold anything
            admin.ok('/trstctl.v1.Secrets/CreateSecret',
                     secrets_pb2.CreateSecretRequest(name='binary', value=b'\x00\xff\x00'),
                     secrets_pb2.SecretMeta)

        def long_field():
            # a value too long for a resource name was PERMISSION_DENIED even to the admin
            long_name = 'n' * 1100
            code, _, det = admin.call('/trstctl.v1.Secrets/GetSecret',
                                      secrets_pb2.GetSecretRequest(name=long_name),
                                      secrets_pb2.Secret)
            expect(code == INVALID and det.startswith('name is too long'),
                   'admin, 1,100-byte name: %s %s' % (code, det))
            code, _, det = admin.call('/trstctl.v1.CA/CreateOwner',
                                      ca_pb2.CreateOwnerRequest(kind='team', name=long_name),
                                      ca_pb2.Owner)
            expect(code == INVALID and 'too long' in det, 'admin, long owner name: %s %s'
                   % (code, det))
            # without a token the answer stays UNAUTHENTICATED, whatever the request holds
            code, _, det = Client(ch, None).call('/trstctl.v1.Secrets/GetSecret',
                                                 secrets_pb2.GetSecretRequest(name=long_name),
                                                 secrets_pb2.Secret)
            expect(code == UNAUTH, 'no token, long name: %s %s' % (code, det))

        def verify_past_head():
            r = admin.ok('/trstctl.v1.Audit/VerifyChain', audit_pb2.VerifyChainRequest(),
                         audit_pb2.VerifyChainResponse)
            expect(r.ok and r.checked > 0, 'whole chain: %s' % r)
            code, _, det = admin.call('/trstctl.v1.Audit/VerifyChain',
                                      audit_pb2.VerifyChainRequest(
                                          from_sequence=r.checked + 1000),
                                      audit_pb2.VerifyChainResponse)
            expect(code == INVALID and 'past the head' in det, 'past the head: %s %s'
                   % (code, det))
            r2 = admin.ok('/trstctl.v1.Audit/VerifyChain',
                          audit_pb2.VerifyChainRequest(from_sequence=r.checked),
                          audit_pb2.VerifyChainResponse)
            expect(r2.ok, 'from the head: %s' % r2)

        checks.run('IP SANs need an ip_addresses condition', ip_sans)
        checks.run('List methods filter each item (deny overrides)', list_filters)
        checks.run('tokens form a tree; no self-escalation', token_tree)
        checks.run('NUL and invalid UTF-8 in strings are INVALID_ARGUMENT', bad_strings)
        checks.run('VerifyChain from past the head is INVALID_ARGUMENT', verify_past_head)
        checks.run('a field too long for a resource name is INVALID_ARGUMENT, not DENIED',
                   long_field)
        ch.close()
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main(AbuseTest))
