#!/usr/bin/python3
"""The product usage reporter, served (docs/telemetry.md).

  test_telemetry.py --trstctl PATH --source-root DIR

A local HTTPS receiver (http.server + ssl, a certificate of a test CA) stands for the
telemetry endpoint; the server trusts that CA through TRSTCTL_TELEMETRY_CA_FILE. One
PostgreSQL outlives the servers, so restarts meet the same inventory and state folder:

1. refused configurations: an http:// endpoint and telemetry with air-gap on (the exact
   messages, from --check-config and from serve); an unreadable CA file stops serve;
2. off by default: a server with the endpoint set but telemetry not enabled sends nothing
   while it builds an inventory (12 identities, 2 certificates issued, 3 secrets);
3. on: reports arrive every interval, POSTed to the endpoint's path as JSON with exactly
   the fields and the order of the example in docs/telemetry.md, the buckets of that
   inventory ("11-100", "1-10", "1-10"), version/os/arch of this build and machine, and a
   UUID v4 instance id that is the content of the instance id file (mode 0600);
4. failures are logged once per change of state: the receiver answers a redirect to a
   plain http:// URL for a few intervals (never followed: nothing reaches the http
   listener), the log has one "telemetry report failed" line, then one "telemetry reports
   are delivered again" line once the receiver answers 200;
5. TLS is verified: without the CA file a report fails naming the certificate, nothing is
   received;
6. restarted with the CA file, the report carries the same instance id.
Exit 77 when grpcio, openssl or PostgreSQL is missing.
"""

import argparse
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import harness
from harness import expect
import outbound

INTERVAL = '1s'
WAIT = 30  # seconds for a report to arrive on a loaded machine


def documented_payload(root):
    """The example report of docs/telemetry.md (the ```json block with "schema")."""
    with open(os.path.join(root, 'docs', 'telemetry.md')) as f:
        text = f.read()
    for block in re.findall(r'```json\n(.*?)```', text, re.S):
        if '"schema"' in block:
            return json.loads(block)
    raise AssertionError('docs/telemetry.md has no ```json block with the report')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--source-root', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    import grpc
    import ca_pb2
    import ca_pb2_grpc
    import secrets_pb2
    import secrets_pb2_grpc

    tmp = tempfile.mkdtemp(prefix='trstctl-telemetry-')
    pki = harness.make_pki(tmp)
    pg = outbound.Postgres(os.path.join(tmp, 'pg'))
    recv = outbound.Receiver(pki['server.pem'], pki['server.key'])
    plain = outbound.Receiver()  # where a redirect would lead, were it followed
    state_dir = os.path.join(tmp, 'state')
    id_file = os.path.join(state_dir, 'telemetry', 'instance-id')
    checks = harness.Checks('telemetry')
    servers = []
    st = {}

    def env(**extra):
        e = {'TRSTCTL_POSTGRES_DSN': pg.dsn,
             'TRSTCTL_STATE_DIR': state_dir,
             'TRSTCTL_SECRETS_KEK_FILE': os.path.join(tmp, 'kek.bin'),
             'TRSTCTL_SERVER_ADDR': '127.0.0.1:0',
             'TRSTCTL_METRICS_ADDR': '127.0.0.1:0',
             'TRSTCTL_SERVER_TLS_MODE': 'disabled',
             'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
             'TRSTCTL_TELEMETRY_ENDPOINT': recv.url('/v1/usage'),
             'TRSTCTL_TELEMETRY_INTERVAL': INTERVAL}
        e.update(extra)
        return e

    on = {'TRSTCTL_TELEMETRY_ENABLED': 'true', 'TRSTCTL_TELEMETRY_CA_FILE': pki['ca.pem']}

    def serve(e):
        s = harness.Server(args.trstctl, e, start_timeout=60)
        servers.append(s)
        checks.server = s
        return s.start()

    def stop(s):
        s.stop()
        checks.server = None

    def refused():
        http_url = 'http://127.0.0.1:%d/v1/usage' % recv.port
        cases = (
            ({'TRSTCTL_TELEMETRY_ENDPOINT': http_url},
             'telemetry.endpoint "%s" must be an absolute https URL' % http_url),
            ({'TRSTCTL_AIRGAP_ENABLED': 'true', 'TRSTCTL_AIRGAP_ENFORCER': 'userspace'},
             'trstctl: configuration: telemetry.enabled must be false when air_gap.enabled '
             'is true'),
        )
        for extra, msg in cases:
            e = env(TRSTCTL_TELEMETRY_ENABLED='true', **extra)
            rc, out, err = outbound.check_config(args.trstctl, e)
            expect(rc == 1 and msg in err, '--check-config with %s: exit %d, %r' % (
                extra, rc, err.strip()))
            full = dict(os.environ, **e)
            r = subprocess.run([args.trstctl, 'serve'], env=full, capture_output=True,
                               text=True, timeout=60)
            expect(r.returncode == 1 and msg in r.stderr, 'serve with %s: exit %d, %r' % (
                extra, r.returncode, r.stderr.strip()[-300:]))
        s = harness.Server(args.trstctl, env(**dict(
            on, TRSTCTL_TELEMETRY_CA_FILE=os.path.join(tmp, 'missing-ca.pem'))),
            start_timeout=60)
        servers.append(s)
        try:
            s.start()
            raise AssertionError('serve started with an unreadable telemetry.ca_file')
        except harness.ServerError:
            pass
        s.stop()
        expect('cannot read telemetry.ca_file \\"%s\\"' % os.path.join(tmp, 'missing-ca.pem')
               in s.log(), 'no reason in the log: %s' % s.log_tail(5))
        expect(recv.count() == 0, 'a refused configuration sent %d reports' % recv.count())

    def off_by_default():
        s = serve(env())
        ch = harness.with_token(grpc.insecure_channel(s.addr),
                                s.bootstrap_token())
        ca = ca_pb2_grpc.CAStub(ch)
        sec = secrets_pb2_grpc.SecretsStub(ch)
        o = ca.CreateOwner(ca_pb2.CreateOwnerRequest(kind='team', name='telemetry'),
                           timeout=10)
        ids = [ca.CreateIdentity(ca_pb2.CreateIdentityRequest(
            name='t%02d.telemetry.test' % i, owner_id=o.id), timeout=10).id
            for i in range(12)]
        for i in ids[:2]:
            ca.TransitionIdentity(ca_pb2.TransitionIdentityRequest(id=i, to='issued'),
                                  timeout=30)
        for i in range(3):
            sec.CreateSecret(secrets_pb2.CreateSecretRequest(
                name='telemetry/s%d' % i, value=b'value-%d' % i), timeout=10)
        time.sleep(2.5)  # two intervals, had it been on
        expect(recv.count() == 0, 'telemetry off, yet %d reports arrived' % recv.count())
        expect(not os.path.exists(id_file), 'telemetry off, yet %s exists' % id_file)
        stop(s)

    def reports():
        s = serve(env(**on))
        st['server'] = s
        r = recv.wait(lambda q: True, WAIT, 'of a report')
        expect(r.method == 'POST' and r.path == '/v1/usage', '%s %s' % (r.method, r.path))
        expect(r.headers.get('Content-Type') == 'application/json',
               'Content-Type %r' % r.headers.get('Content-Type'))
        body = r.json()
        doc = documented_payload(args.source_root)
        expect(list(body) == list(doc), 'fields %s, docs/telemetry.md shows %s'
               % (list(body), list(doc)))
        expect(list(body['credential_buckets']) == list(doc['credential_buckets']),
               'buckets %s, documented %s' % (list(body['credential_buckets']),
                                              list(doc['credential_buckets'])))
        version = subprocess.run([args.trstctl, '--version'], capture_output=True,
                                 text=True).stdout.split()[-1]
        want = {'schema': 1, 'version': version, 'os': 'linux', 'arch': platform.machine(),
                'credential_buckets': {'identities': '11-100', 'certificates': '1-10',
                                       'secrets': '1-10'}}
        for k, v in want.items():
            expect(body[k] == v, '%s: %r, want %r' % (k, body[k], v))
        expect(uuid.UUID(body['instance_id']).version == 4, 'instance id %r'
               % body['instance_id'])
        with open(id_file) as f:
            expect(f.read() == body['instance_id'] + '\n', 'the file holds another id')
        mode = stat.S_IMODE(os.stat(id_file).st_mode)
        expect(mode == 0o600, 'instance id file mode %o' % mode)
        st['id'] = body['instance_id']
        n = recv.count()
        recv.wait_after(n, WAIT, 'one interval later')
        expect(outbound.count_lines(s, 'telemetry report sent') == 1,
               'want one "telemetry report sent" line')
        print('  report: %s' % json.dumps(body))

    def failures_logged_once():
        s = st['server']
        recv.answer = (302, b'', {'Location': plain.url('/v1/usage')})
        n = recv.count()
        recv.wait_after(n + 3, WAIT, 'three redirected reports')
        recv.answer = (200, b'{}', {})
        m = recv.count()
        recv.wait_after(m + 1, WAIT, 'after the endpoint recovered')
        time.sleep(0.3)
        failed = outbound.count_lines(s, 'telemetry report failed; it is tried again every '
                                         'interval, and this is logged again only once '
                                         'reports are delivered')
        again = outbound.count_lines(s, 'telemetry reports are delivered again')
        expect(failed == 1, '%d "failed" lines for one outage, want 1' % failed)
        expect(again == 1, '%d "delivered again" lines, want 1' % again)
        expect('redirect (HTTP 302), which is not followed' in s.log(),
               'the failure does not name the redirect')
        expect(plain.count() == 0, 'the redirect to http:// was followed')
        stop(s)

    def tls_verified():
        e = env(TRSTCTL_TELEMETRY_ENABLED='true')
        n = recv.count()
        s = serve(e)
        deadline = time.monotonic() + WAIT
        while 'telemetry report failed' not in s.log():
            expect(time.monotonic() < deadline, 'no failure logged without the CA file')
            time.sleep(0.2)
        line = [l for l in s.log().splitlines() if 'telemetry report failed' in l][0]
        expect('certificate' in line.lower() or 'ssl' in line.lower(),
               'the failure does not name TLS: %s' % line)
        stop(s)
        expect(recv.count() == n, 'a report got through an unverified TLS connection')

    def stable_id():
        n = recv.count()
        s = serve(env(**on))
        r = recv.wait_after(n, WAIT, 'after the restart')
        expect(r.json()['instance_id'] == st['id'], 'instance id %s after the restart, '
               'was %s' % (r.json()['instance_id'], st['id']))
        stop(s)

    try:
        checks.run('refused: http:// endpoint, air-gap, unreadable CA file', refused)
        checks.run('off by default: nothing sent', off_by_default)
        if checks.run('on: the documented report, every interval', reports):
            checks.run('a failing endpoint is logged once, and its recovery once',
                       failures_logged_once)
        checks.run('TLS verified: no report without the CA that signed the endpoint',
                   tls_verified)
        checks.run('restart: the same instance id', stable_id)
    finally:
        for s in servers:
            s.stop()
            shutil.rmtree(s.state_dir, ignore_errors=True)
        recv.close()
        plain.close()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
