#!/usr/bin/python3
"""Served test of the OTLP/HTTP export (server/otel/, docs/telemetry.md "OpenTelemetry
export (OTLP)"), against the real `trstctl serve` with a real PostgreSQL.

No OpenTelemetry collector is installable here, so the collector is a small HTTP server in
this process on loopback that decodes every body with Python modules that protoc generates,
now, from the same api/otlp/ definitions the server's encoder is generated from, and keeps
them. The checks, field by field:

- a span per call: name "trstctl.v1.CA/CreateOwner", kind SERVER, rpc.system, rpc.service,
  rpc.method, rpc.grpc.status_code, trstctl.principal.id (the token's id), start and end;
  resource service.name and service.version; POSTed to /v1/traces as
  application/x-protobuf with the configured bearer token;
- a log record per committed audit record (a policy denial and the bad token's summary
  included), with trstctl.audit.type, .id, .sequence, trstctl.tenant.id,
  trstctl.audit.actor.subject, matching Audit.ListEvents one to one;
- no token, bearer token or secret value anywhere in the bodies, no OTLP token in the log;
- the counters on /metrics.

Then OTLP pointed at dead collectors (a closed port; a listener that accepts and never
answers): calls take no longer than without OTLP (a generous bound, compared within this
run) and complete while the exporter is still retrying, and once the queue is full the
spans are dropped and counted.

usage: test_otlp.py --trstctl PATH --source-root DIR
"""

import argparse
import http.server
import os
import secrets as pysecrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import expect
from test_guard import http_get, metrics_port, parse_metrics

harness.need_grpc()

import grpc  # noqa: E402

import audit_pb2  # noqa: E402
import audit_pb2_grpc  # noqa: E402
import ca_pb2  # noqa: E402
import ca_pb2_grpc  # noqa: E402
import policy_pb2  # noqa: E402
import policy_pb2_grpc  # noqa: E402
import secrets_pb2  # noqa: E402
import secrets_pb2_grpc  # noqa: E402

OTLP_FILES = ['common/v1/common.proto', 'resource/v1/resource.proto', 'trace/v1/trace.proto',
              'logs/v1/logs.proto', 'collector/trace/v1/trace_service.proto',
              'collector/logs/v1/logs_service.proto']
DEFAULT_TENANT = '00000000-0000-0000-0000-000000000000'
SERVICE_NAME = 'trstctl-otlp-served'
PLAIN = {'TRSTCTL_SERVER_TLS_MODE': 'disabled', 'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'}


def load_otlp(source_root, folder):
    """Generates the OTLP Python modules from api/otlp/ with protoc; returns the two
    request modules."""
    protoc = shutil.which('protoc')
    if not protoc:
        harness.skip('protoc not found (package protobuf-compiler)')
    src = os.path.join(source_root, 'api', 'otlp')
    subprocess.run([protoc, '-I' + src, '--python_out=' + folder] +
                   ['opentelemetry/proto/' + f for f in OTLP_FILES], check=True)
    sys.path.insert(0, folder)
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    return trace_service_pb2, logs_service_pb2


class Collector:
    """An OTLP/HTTP receiver on loopback: keeps (path, headers, raw body, decoded request)
    of every POST and answers 200 with an empty Export*ServiceResponse."""

    def __init__(self, trace_mod, logs_mod):
        self.trace_mod, self.logs_mod = trace_mod, logs_mod
        self.lock = threading.Lock()
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                if self.path == '/v1/traces':
                    req = outer.trace_mod.ExportTraceServiceRequest.FromString(body)
                    out = outer.trace_mod.ExportTraceServiceResponse().SerializeToString()
                elif self.path == '/v1/logs':
                    req = outer.logs_mod.ExportLogsServiceRequest.FromString(body)
                    out = outer.logs_mod.ExportLogsServiceResponse().SerializeToString()
                else:
                    req, out = None, b''
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers.items()), body, req))
                self.send_response(200 if req is not None else 404)
                self.send_header('Content-Type', 'application/x-protobuf')
                self.send_header('Content-Length', str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def spans(self):
        out = []
        for path, _, _, req in self.snapshot():
            if path == '/v1/traces':
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        out += [(rs.resource, ss.scope, s) for s in ss.spans]
        return out

    def log_records(self):
        out = []
        for path, _, _, req in self.snapshot():
            if path == '/v1/logs':
                for rl in req.resource_logs:
                    for sl in rl.scope_logs:
                        out += [(rl.resource, sl.scope, r) for r in sl.log_records]
        return out


def attrs(kvs):
    """KeyValue list -> dict of plain values (keys must be unique)."""
    out = {}
    for kv in kvs:
        expect(kv.key not in out, 'attribute %s twice' % kv.key)
        which = kv.value.WhichOneof('value')
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def wait_until(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.1)


class ExportTest:
    def __init__(self, server, collector, otlp_token):
        self.server, self.col, self.otlp_token = server, collector, otlp_token
        self.admin_token = server.bootstrap_token()
        ch = harness.with_token(harness.channel(server.addr, 'plaintext'), self.admin_token)
        self.ca = ca_pb2_grpc.CAStub(ch)
        self.pol = policy_pb2_grpc.PolicyStub(ch)
        self.sec = secrets_pb2_grpc.SecretsStub(ch)
        self.audit = audit_pb2_grpc.AuditStub(ch)
        bad = harness.with_token(harness.channel(server.addr, 'plaintext'),
                                 'trst_' + 'A' * 43)
        self.bad_ca = ca_pb2_grpc.CAStub(bad)
        self.secret_value = b'otlp-served-secret-value-' + pysecrets.token_hex(8).encode()
        self.admin_id = None
        self.new_token = None

    def make_calls(self):
        toks = self.pol.ListTokens(policy_pb2.ListTokensRequest(), timeout=10).tokens
        expect(len(toks) == 1, 'one token (the bootstrap one) at start: %d' % len(toks))
        self.admin_id = toks[0].id
        self.owner = self.ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='team', name='otlp-team', email='otlp@example.com'), timeout=10)
        try:
            self.ca.GetOwner(ca_pb2.GetOwnerRequest(id='00000000-0000-4000-8000-000000000000'),
                             timeout=10)
            raise AssertionError('GetOwner of a missing owner answered')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, 'GetOwner: %s' % e.code())
        created = self.pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='otlp-ci', policies=[]), timeout=10)
        self.new_token = created.token
        self.new_token_id = created.token_id
        self.sec.CreateSecret(secrets_pb2.CreateSecretRequest(
            name='otlp/db/password', value=self.secret_value), timeout=10)
        narrow = secrets_pb2_grpc.SecretsStub(harness.with_token(
            harness.channel(self.server.addr, 'plaintext'), self.new_token))
        try:
            narrow.GetSecret(secrets_pb2.GetSecretRequest(name='otlp/db/password'), timeout=10)
            raise AssertionError('a token without policies read a secret')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.PERMISSION_DENIED, 'narrow: %s' % e.code())
        try:
            self.bad_ca.ListOwners(ca_pb2.ListOwnersRequest(), timeout=10)
            raise AssertionError('a bad token was accepted')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, 'bad token: %s' % e.code())

    def span_of(self, name):
        got = [s for s in self.col.spans() if s[2].name == name]
        return got[0] if got else None

    def spans_per_call(self):
        want = ['trstctl.v1.Policy/ListTokens', 'trstctl.v1.CA/CreateOwner',
                'trstctl.v1.CA/GetOwner', 'trstctl.v1.Policy/CreateToken',
                'trstctl.v1.Secrets/CreateSecret', 'trstctl.v1.Secrets/GetSecret',
                'trstctl.v1.CA/ListOwners']
        wait_until('a span of each call', lambda: all(self.span_of(n) for n in want))
        for resource, scope, span in self.col.spans():
            r = attrs(resource.attributes)
            expect(r.get('service.name') == SERVICE_NAME, 'service.name %r' % r)
            expect(r.get('service.version'), 'no service.version')
            expect(scope.name == 'trstctl', 'scope %r' % scope.name)
            expect(len(span.trace_id) == 16 and any(span.trace_id), 'trace_id %r' % span.trace_id)
            expect(len(span.span_id) == 8 and any(span.span_id), 'span_id %r' % span.span_id)
            expect(span.kind == span.SPAN_KIND_SERVER, 'kind %d' % span.kind)
            expect(0 < span.start_time_unix_nano <= span.end_time_unix_nano,
                   'times %d %d' % (span.start_time_unix_nano, span.end_time_unix_nano))
            expect(abs(span.start_time_unix_nano / 1e9 - time.time()) < 600, 'start time')
            a = attrs(span.attributes)
            service, method = span.name.rsplit('/', 1)
            expect(a['rpc.system'] == 'grpc', 'rpc.system %r' % a)
            expect(a['rpc.service'] == service and a['rpc.method'] == method,
                   '%s: rpc.service/rpc.method %r' % (span.name, a))
            expect(isinstance(a['rpc.grpc.status_code'], int), 'status code %r' % a)
        cases = [('trstctl.v1.CA/CreateOwner', 0, self.admin_id),
                 ('trstctl.v1.CA/GetOwner', 5, self.admin_id),
                 ('trstctl.v1.Policy/CreateToken', 0, self.admin_id),
                 ('trstctl.v1.Secrets/CreateSecret', 0, self.admin_id),
                 ('trstctl.v1.Secrets/GetSecret', 7, self.new_token_id),
                 ('trstctl.v1.CA/ListOwners', 16, None)]
        for name, code, principal in cases:
            _, _, span = self.span_of(name)
            a = attrs(span.attributes)
            expect(a['rpc.grpc.status_code'] == code, '%s: code %r' % (name, a))
            expect(a.get('trstctl.principal.id') == principal, '%s: principal %r' % (name, a))
            expect(not span.status.code, '%s: a client error leaves the status unset' % name)
        _, _, span = self.span_of('trstctl.v1.CA/CreateOwner')
        expect(set(attrs(span.attributes)) == {'rpc.system', 'rpc.service', 'rpc.method',
                                               'rpc.grpc.status_code', 'trstctl.principal.id'},
               'CreateOwner attributes %r' % attrs(span.attributes))
        print('    %d spans, e.g. %s %.3f ms' % (
            len(self.col.spans()), span.name,
            (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6))

    def audit_events(self):
        events, page = [], ''
        while True:
            r = self.audit.ListEvents(audit_pb2.ListEventsRequest(page_token=page), timeout=10)
            events += list(r.events)
            page = r.next_page_token
            if not page:
                return events

    def log_record_per_audit_record(self):
        want = ('owner.created', 'token.created', 'secret.created', 'policy.denied',
                'auth.denied')  # auth.denied: the bad token's summary, once a second here
        events = wait_until('the audit records of the calls', lambda: (
            lambda ev: ev if set(want) <= {e.type for e in ev} else None)(self.audit_events()))
        wait_until('a log record of each audit record',
                   lambda: len(self.col.log_records()) >= len(events))
        by_id = {}
        for resource, scope, rec in self.col.log_records():
            r = attrs(resource.attributes)
            expect(r.get('service.name') == SERVICE_NAME, 'service.name %r' % r)
            expect(scope.name == 'trstctl', 'scope %r' % scope.name)
            a = attrs(rec.attributes)
            expect(a['trstctl.audit.id'] not in by_id, 'record %s twice' % a['trstctl.audit.id'])
            by_id[a['trstctl.audit.id']] = (rec, a)
        for e in events:
            expect(e.id in by_id, 'audit record %s (%s) not exported' % (e.sequence, e.type))
            rec, a = by_id[e.id]
            expect(a['trstctl.audit.type'] == e.type, 'type %r vs %r' % (a, e.type))
            expect(a['trstctl.audit.sequence'] == e.sequence, 'sequence %r vs %d' % (a, e.sequence))
            expect(a['trstctl.tenant.id'] == DEFAULT_TENANT, 'tenant %r' % a)
            expect(a['trstctl.audit.actor.subject'] == e.actor, 'actor %r vs %r' % (a, e.actor))
            expect(a['trstctl.audit.resource'] == e.resource, 'resource %r' % a)
            expect(a['trstctl.audit.outcome'] == e.outcome, 'outcome %r' % a)
            expect(a['trstctl.audit.hash'] == e.hash, 'hash %r' % a)
            expect(a.get('trstctl.audit.data', '{}') == e.data_json, 'data %r' % a)
            expect(rec.event_name == 'trstctl.audit', 'event_name %r' % rec.event_name)
            expect(rec.body.string_value == e.type, 'body %r' % rec.body)
            want = 9 if e.outcome == 'ok' else 13 if e.outcome == 'denied' else 17
            expect(rec.severity_number == want, '%s: severity %d' % (e.type, rec.severity_number))
            expect(abs(rec.time_unix_nano // 1000 -
                       (e.time.seconds * 1000000 + e.time.nanos // 1000)) <= 1,
                   'time %d vs %s' % (rec.time_unix_nano, e.time))
        owner = [a for _, a in by_id.values() if a['trstctl.audit.type'] == 'owner.created'][0]
        expect(owner['trstctl.audit.actor.subject'].split()[0] == self.admin_id,
               'actor of owner.created: %r' % owner)
        print('    %d log records for %d audit records' % (len(by_id), len(events)))

    def requests_are_otlp(self):
        reqs = self.col.snapshot()
        expect(reqs, 'no request')
        for path, headers, _, _ in reqs:
            h = {k.lower(): v for k, v in headers.items()}
            expect(path in ('/v1/traces', '/v1/logs'), 'path %s' % path)
            expect(h.get('content-type') == 'application/x-protobuf', 'content type %r' % h)
            expect(h.get('authorization') == 'Bearer ' + self.otlp_token, 'no bearer token')
            expect(h.get('user-agent', '').startswith('trstctl/'), 'user agent %r' % h)

    def no_secret_anywhere(self):
        needles = {'the bootstrap token': self.admin_token.encode(),
                   'the created token': self.new_token.encode(),
                   'the secret value': self.secret_value,
                   'the OTLP bearer token': self.otlp_token.encode()}
        for path, _, body, _ in self.col.snapshot():
            for what, needle in needles.items():
                expect(needle not in body, '%s is in a %s body' % (what, path))
        log = self.server.log()
        for what in ('the OTLP bearer token', 'the created token', 'the secret value'):
            expect(needles[what].decode() not in log, '%s is in the server log' % what)

    def metrics_count(self):
        m = wait_until('the counters', lambda: (lambda m: m if m.get(
            'trstctl_otlp_sent_total{signal="logs"}', 0) > 0 else None)(
            parse_metrics(http_get(metrics_port(self.server), '/metrics')[1])))
        expect(m['trstctl_otlp_sent_total{signal="traces"}'] >= 6, 'sent traces %r' % m)
        trips = {k: v for k, v in m.items()
                 if k.startswith('trstctl_egress_guard_userspace_trips_total')}
        expect(len(trips) == 3 and not any(trips.values()), 'a guard trip: %r' % trips)
        for s in ('traces', 'logs'):
            for n in ('failed', 'dropped'):
                expect(m['trstctl_otlp_%s_total{signal="%s"}' % (n, s)] == 0,
                       '%s %s: %r' % (n, s, m))


def run_export(args, col, otlp_token):
    host = harness.loopback_name()
    print('    collector at http://%s:%d (%s)' % (
        host, col.port, 'a name, not an allow_hosts entry' if host != '127.0.0.1'
        else 'this host has no name that resolves to loopback only'))
    env = dict(PLAIN)
    env.update({
        'TRSTCTL_OTLP_ENABLED': 'true',
        'TRSTCTL_OTLP_ENDPOINT': 'http://%s:%d' % (host, col.port),
        'TRSTCTL_OTLP_INSECURE': 'true',
        'TRSTCTL_OTLP_BEARER_TOKEN': otlp_token,
        'TRSTCTL_OTLP_SERVICE_NAME': SERVICE_NAME,
        'TRSTCTL_OTLP_BATCH_INTERVAL': '200ms',
        'TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL': '1s',
        # the in-process egress check judges every export request (loopback is allowed;
        # a name only when start-up admitted it: "Private names" in docs/airgap.md)
        'TRSTCTL_AIRGAP_ENABLED': 'true',
        'TRSTCTL_AIRGAP_ENFORCER': 'userspace',
    })
    with harness.Server(args.trstctl, env=env, start_timeout=60) as server:
        t = ExportTest(server, col, otlp_token)
        c = harness.Checks('otlp export', server)
        if not c.run('calls: owner, token, secret, a missing owner, a denial, a bad token',
                     t.make_calls):
            return c.finish()
        c.run('a span per call, field by field', t.spans_per_call)
        c.run('a log record per committed audit record, as ListEvents has it',
              t.log_record_per_audit_record)
        c.run('OTLP/HTTP requests: protobuf, bearer token, user agent', t.requests_are_otlp)
        c.run('no token or secret in any body or in the log', t.no_secret_anywhere)
        c.run('/metrics counts what was sent', t.metrics_count)
        return c.finish()


# -- dead collectors ------------------------------------------------------------------------

class Silent:
    """A listener that accepts connections and never answers (nor reads)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


CALLS = 120
QUEUE = 20
BATCH = 5


def call_latencies(server, n=CALLS):
    """n ListOwners calls one after the other; their latencies in seconds."""
    ch = harness.with_token(harness.channel(server.addr, 'plaintext'), server.bootstrap_token())
    ca = ca_pb2_grpc.CAStub(ch)
    ca.ListOwners(ca_pb2.ListOwnersRequest(page_size=1), timeout=10)  # connect
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        ca.ListOwners(ca_pb2.ListOwnersRequest(page_size=1), timeout=30)
        out.append(time.monotonic() - t0)
    return out


def dead_env(endpoint):
    env = dict(PLAIN)
    env.update({
        'TRSTCTL_OTLP_ENABLED': 'true',
        'TRSTCTL_OTLP_ENDPOINT': endpoint,
        'TRSTCTL_OTLP_INSECURE': 'true',
        'TRSTCTL_OTLP_TIMEOUT': '4s',
        'TRSTCTL_OTLP_QUEUE_SIZE': str(QUEUE),
        'TRSTCTL_OTLP_BATCH_SIZE': str(BATCH),
        'TRSTCTL_OTLP_BATCH_INTERVAL': '100ms',
        'TRSTCTL_OTLP_RETRY_MAX_ELAPSED': '1m',
    })
    return env


def summary(lat):
    return 'median %.2f ms, max %.1f ms' % (statistics.median(lat) * 1e3, max(lat) * 1e3)


def run_dead(args):
    c = harness.Checks('otlp dead collector')
    with harness.Server(args.trstctl, env=dict(PLAIN), start_timeout=60) as server:
        base = call_latencies(server)
    print('    without OTLP: %s' % summary(base))
    bound = max(10 * statistics.median(base), statistics.median(base) + 0.25)

    def check(kind, endpoint):
        with harness.Server(args.trstctl, env=dead_env(endpoint), start_timeout=60) as server:
            t0 = time.monotonic()
            lat = call_latencies(server)
            took = time.monotonic() - t0
            m = parse_metrics(http_get(metrics_port(server), '/metrics')[1])
            print('    %s: %s; %d calls in %.1f s; %r' % (
                kind, summary(lat), CALLS, took,
                {k[13:]: v for k, v in m.items() if k.startswith('trstctl_otlp_')}))
            expect(statistics.median(lat) <= bound,
                   '%s: median %.1f ms against %.1f ms without OTLP' % (
                       kind, statistics.median(lat) * 1e3, statistics.median(base) * 1e3))
            # a call that waited for one export request would have taken its 4 s timeout
            expect(max(lat) < 3.0, '%s: a call took %.1f s' % (kind, max(lat)))
            # the calls were done while the exporter still retried its first batches
            # (one exporter thread: it may be stuck on the start-up audit record's request)
            expect(m['trstctl_otlp_sent_total{signal="traces"}'] == 0, 'sent? %r' % m)
            expect(m['trstctl_otlp_requests_total{signal="traces"}'] +
                   m['trstctl_otlp_requests_total{signal="logs"}'] >= 1, 'no request %r' % m)
            dropped = m['trstctl_otlp_dropped_total{signal="traces"}']
            expect(dropped >= CALLS - QUEUE - BATCH,
                   '%s: %d dropped of %d calls (queue %d)' % (kind, dropped, CALLS, QUEUE))
            expect(m['trstctl_otlp_queued{signal="traces"}'] <= QUEUE, 'queued %r' % m)
            # the silent collector's first request is still waiting for its timeout: the
            # line comes when it ends, after the calls
            wait_until('"OTLP export failing"', lambda: '"OTLP export failing"' in server.log(),
                       timeout=20)
            t1 = time.monotonic()
            code = server.stop(timeout=30)
            expect(code == 0, '%s: exit status %s' % (kind, code))
            print('    %s: stopped in %.1f s' % (kind, time.monotonic() - t1))

    c.run('a closed port slows no call; a full queue drops and counts',
          check, 'closed port', 'http://127.0.0.1:%d' % harness.free_port())
    silent = Silent()
    try:
        c.run('a collector that never answers slows no call; a full queue drops and counts',
              check, 'silent collector', 'http://127.0.0.1:%d' % silent.port)
    finally:
        silent.close()
    return c.finish()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--source-root', required=True)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix='trstctl-otlp-py-')
    try:
        trace_mod, logs_mod = load_otlp(args.source_root, folder)
        col = Collector(trace_mod, logs_mod)
        try:
            r = run_export(args, col, 'otlp-bearer-' + pysecrets.token_hex(12))
        finally:
            col.close()
        return r | run_dead(args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
