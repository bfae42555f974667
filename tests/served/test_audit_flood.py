#!/usr/bin/python3
"""Served test: a flood of calls without a valid token does not flood the audit log.

Against the real `trstctl serve` on a real PostgreSQL: 2,000 calls without a token or with
kilobytes of junk in the authorization header (and control characters in the resource)
are all refused UNAUTHENTICATED and counted by trstctl_unauthenticated_calls_total, but
add no audit record while the summary interval runs; when the server stops, they become
ONE auth.denied record for their source with the right count, reasons and methods, the
caller's text cut and escaped, the header never stored. A call with a valid token that
policy denies still gets a policy.denied record of its own at once. With a 1 s interval
the summary is written without a restart. The chain verifies at the end.

usage: test_audit_flood.py --trstctl PATH [--source-root DIR]
"""

import json
import re
import sys
import time
import urllib.request

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import audit_pb2  # noqa: E402
import ca_pb2  # noqa: E402
import policy_pb2  # noqa: E402
import secrets_pb2  # noqa: E402
from test_policy import PolicyTest, main  # noqa: E402

CALLS = 2000
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
GET_SECRET = '/trstctl.v1.Secrets/GetSecret'
GET_OWNER = '/trstctl.v1.CA/GetOwner'
# printable junk (gRPC metadata carries printable ASCII only), quotes and backslashes too
JUNK_HEADER = 'Bearer ' + ('"\\junk-' * 700)[:4000]
JUNK_NAME = 'flood/' + ('\x01\n\x1b[31m\u202e' + 'n' * 40) * 20


def metrics_port(srv):
    for line in srv.log().splitlines():
        if '"metrics serving"' in line:
            return int(json.loads(line)['port'])
    raise AssertionError('no "metrics serving" log line')


def unauth_metric(srv):
    """{reason: value} of trstctl_unauthenticated_calls_total."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open('http://127.0.0.1:%d/metrics' % metrics_port(srv), timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^trstctl_unauthenticated_calls_total\{reason="(\w+)"\} (\d+)$',
                         text, re.M):
        out[m.group(1)] = int(m.group(2))
    expect(out, '/metrics has no trstctl_unauthenticated_calls_total:\n%s' % text[-2000:])
    return out


class FloodTest(PolicyTest):
    def run(self):
        checks = harness.Checks('audit-flood')
        a = self.server(TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL='24h')
        checks.server = a
        admin_token = a.bootstrap_token()
        st = {}

        def events(srv, prefix):
            with grpc.insecure_channel(srv.addr) as ch:
                stub = ch.unary_unary('/trstctl.v1.Audit/ListEvents',
                                      request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=audit_pb2.ListEventsResponse
                                      .FromString)
                out, tok = [], ''
                while True:
                    r = stub(audit_pb2.ListEventsRequest(type_prefix=prefix, page_size=1000,
                                                         page_token=tok), timeout=30,
                             metadata=[('authorization', 'Bearer ' + admin_token)])
                    out.extend(r.events)
                    tok = r.next_page_token
                    if not tok:
                        return out

        def flood():
            st['before_all'] = len(events(a, ''))
            st['before_auth'] = len(events(a, 'auth.denied'))
            ch = grpc.insecure_channel(a.addr)
            get_secret = ch.unary_unary(GET_SECRET,
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=secrets_pb2.Secret.FromString)
            get_owner = ch.unary_unary(GET_OWNER,
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=ca_pb2.Owner.FromString)
            secret_req = secrets_pb2.GetSecretRequest(name=JUNK_NAME)
            owner_req = ca_pb2.GetOwnerRequest(id='owner-' + 'x' * 900)
            start = time.monotonic()
            futures = []
            for i in range(CALLS):
                md = [('authorization', JUNK_HEADER)] if i % 2 else None
                if i % 4 == 3:
                    futures.append(get_owner.future(owner_req, timeout=30, metadata=md))
                else:
                    futures.append(get_secret.future(secret_req, timeout=30, metadata=md))
                if len(futures) >= 200:
                    for f in futures:
                        expect(f.code() == UNAUTH, 'call: %s %s' % (f.code(), f.details()))
                    futures = []
            for f in futures:
                expect(f.code() == UNAUTH, 'call: %s %s' % (f.code(), f.details()))
            took = time.monotonic() - start
            ch.close()
            print('  %d tokenless calls in %.2f s (%.0f/s)' % (CALLS, took, CALLS / took))

        def counted():
            m = unauth_metric(a)
            expect(m.get('missing') == CALLS // 2 and m.get('malformed') == CALLS // 2 and
                   sum(m.values()) == CALLS, 'metric: %r' % m)

        def no_rows_yet():
            after = len(events(a, ''))
            expect(after == st['before_all'], 'the audit log grew by %d records during the '
                   'interval' % (after - st['before_all']))

        def authenticated_denial():
            ch = harness.with_token(grpc.insecure_channel(a.addr), admin_token)
            create = ch.unary_unary('/trstctl.v1.Policy/CreateToken',
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=policy_pb2.CreateTokenResponse
                                    .FromString)
            t = create(policy_pb2.CreateTokenRequest(name='nobody'), timeout=10)
            before = len(events(a, 'policy.denied'))
            with grpc.insecure_channel(a.addr) as raw:
                fn = raw.unary_unary(GET_SECRET,
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=secrets_pb2.Secret.FromString)
                for name in ('denied/one', 'denied/two'):
                    try:
                        fn(secrets_pb2.GetSecretRequest(name=name), timeout=10,
                           metadata=[('authorization', 'Bearer ' + t.token)])
                        raise AssertionError('a token without policies read %s' % name)
                    except grpc.RpcError as e:
                        expect(e.code() == DENIED, '%s: %s %s' % (name, e.code(), e.details()))
            got = events(a, 'policy.denied')[before:]
            expect(len(got) == 2 and [e.actor.split()[0] for e in got] == [t.token_id] * 2 and
                   [e.resource for e in got] == ['secret/denied/one', 'secret/denied/two'],
                   'policy.denied records: %r' % [(e.actor, e.resource) for e in got])
            st['policy_denied'] = 2
            st['token_created'] = 1

        def summary_at_shutdown():
            code = a.stop()
            expect(code == 0, 'server exit %r' % code)
            expect('cannot audit' not in a.log(), 'shutdown log:\n%s' % a.log_tail())
            b = self.server(TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL='1s')
            checks.server = b
            st['b'] = b
            new = events(b, '')[st['before_all']:]
            kinds = sorted(e.type for e in new)
            expect(kinds.count('auth.denied') == 1 and len(new) <= 5,
                   'the flood added %d records: %r' % (len(new), kinds))
            rec = [e for e in new if e.type == 'auth.denied'][0]
            d = json.loads(rec.data_json)
            print('  summary: %s' % rec.data_json[:400])
            expect(rec.outcome == 'denied' and d['source'] == '127.0.0.1' and
                   d['count'] == CALLS and not d['other_sources'], 'summary %r' % d)
            expect(d['reasons'] == {'missing': CALLS // 2, 'malformed': CALLS // 2},
                   'reasons %r' % d['reasons'])
            expect(d['methods'] == {GET_SECRET: CALLS * 3 // 4, GET_OWNER: CALLS // 4},
                   'methods %r' % d['methods'])
            expect(d['first_time'] <= d['last_time'] and d['interval_seconds'] == 86400,
                   'times %r' % d)
            sample = d['sample_resource']
            expect(len(sample) <= 64 * 8 + 3 and sample.endswith('...') and
                   d['sample_resource_bytes'] > 1000, 'sample %r' % sample)
            expect(not re.search('[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e]', sample) and
                   '\\x01' in sample and '\\u{202E}' in sample, 'sample not escaped: %r'
                   % sample)
            for e in new:
                expect('junk-' not in e.data_json and 'junk-' not in e.resource,
                       'the header reached the audit log: %r' % e.data_json[:200])

        def summary_by_timer():
            b = st['b']
            before = len(events(b, 'auth.denied'))
            with grpc.insecure_channel(b.addr) as ch:
                fn = ch.unary_unary(GET_SECRET,
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=secrets_pb2.Secret.FromString)
                for _ in range(50):
                    try:
                        fn(secrets_pb2.GetSecretRequest(name='x'), timeout=10)
                    except grpc.RpcError as e:
                        expect(e.code() == UNAUTH, '%s' % e.code())
            deadline = time.monotonic() + 10
            while True:
                new = events(b, 'auth.denied')[before:]
                if sum(json.loads(e.data_json)['count'] for e in new) >= 50:
                    break
                expect(time.monotonic() < deadline, 'no summary within 10 s: %r' % new)
                time.sleep(0.2)
            expect(len(new) <= 3 and sum(json.loads(e.data_json)['count'] for e in new) == 50,
                   'timer summaries: %r' % [e.data_json for e in new])
            expect(unauth_metric(b).get('missing') == 50, 'metric of b: %r' % unauth_metric(b))

        def chain_verifies():
            b = st['b']
            with grpc.insecure_channel(b.addr) as ch:
                fn = ch.unary_unary('/trstctl.v1.Audit/VerifyChain',
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=audit_pb2.VerifyChainResponse
                                    .FromString)
                r = fn(audit_pb2.VerifyChainRequest(), timeout=60,
                       metadata=[('authorization', 'Bearer ' + admin_token)])
            expect(r.ok and r.checked > 0, 'VerifyChain: %s' % r)

        for name, fn in (('2,000 calls without a valid token are refused', flood),
                         ('the metric counts every one, by reason', counted),
                         ('no audit record during the interval', no_rows_yet),
                         ('a denied call with a valid token has its own record',
                          authenticated_denial),
                         ('at shutdown: one summary for the source, text cut and escaped',
                          summary_at_shutdown),
                         ('every interval: a summary without a restart', summary_by_timer),
                         ('the chain verifies', chain_verifies)):
            if not checks.run(name, fn) and name.startswith('2,000'):
                break
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main(FloodTest))
