#!/usr/bin/python3
"""Served test: cutting the audit log's tail in PostgreSQL is reported by VerifyChain.

Against the real `trstctl serve` with a real PostgreSQL and nats-server -js: the server
signs and witnesses its head every second (TRSTCTL_AUDIT_CHECKPOINT_INTERVAL=1s) in its
local checkpoint file and as event audit.checkpoint on JetStream; the untouched chain
verifies and says the newest witness matches. Then, with the server stopped, the newest
records and their checkpoints are deleted and the head row moved back with psql as the
database superuser (a consistent, shorter chain: every check on the tables passes). After
a restart VerifyChain fails and names the cut (records missing after sequence N, expected
head H), and so does `trstctl audit verify` (a client of VerifyChain: exit status 3, the
cut named); with the local file gone, the copy on JetStream still tells.

usage: test_audit_truncate.py --trstctl PATH [--source-root DIR]
"""

import json
import os
import shutil
import subprocess
import sys
import time

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import audit_pb2  # noqa: E402
import secrets_pb2  # noqa: E402
from spine import psql  # noqa: E402
from test_policy import PolicyTest, main  # noqa: E402

CUT = 10  # records cut from the tail


class TruncateTest(PolicyTest):
    def __init__(self, exe, root):
        super().__init__(exe, root)
        self.nats_url = self.start_nats()
        self.state = os.path.join(self.tmp, 'state')
        self.witness = os.path.join(self.state, 'audit-checkpoints')

    def services(self, script):
        return subprocess.run(['bash', '-c', '. "%s/scripts/lib/services.sh" && %s'
                               % (self.root, script), 'svc', os.path.join(self.tmp, 'svc')],
                              capture_output=True, text=True, timeout=120)

    def start_nats(self):
        if not shutil.which('nats-server'):
            harness.skip('nats-server not found (apt-get install nats-server)')
        r = self.services('p=$(svc_free_port) && svc_nats_start "$1" "$p" >&2 && '
                          'echo "$TRSTCTL_NATS_URL"')
        if r.returncode != 0 or not r.stdout.strip():
            harness.skip('nats-server -js cannot start here: %s' % r.stderr.strip()[-400:])
        return r.stdout.strip().splitlines()[-1]

    def env(self):
        """What the servers add to PolicyTest's: one state folder (the witness file lives
        on across restarts), NATS, a checkpoint every second."""
        return {'TRSTCTL_STATE_DIR': self.state,
                'TRSTCTL_NATS_URL': self.nats_url,
                'TRSTCTL_AUDIT_CHECKPOINT_INTERVAL': '1s'}

    def server(self):
        return super().server(**self.env())

    def close(self):
        self.services('svc_nats_stop "$1"')
        super().close()

    def witnessed(self):
        """The newest sequence in the local checkpoint file (0: none)."""
        try:
            with open(self.witness) as f:
                return max([json.loads(line)['sequence'] for line in f if line.strip()] or [0])
        except FileNotFoundError:
            return 0

    def run(self):
        checks = harness.Checks('audit-truncate')
        a = self.server()
        checks.server = a
        token = a.bootstrap_token()
        st = {}

        def call(srv, method, req, resp):
            with grpc.insecure_channel(srv.addr) as ch:
                fn = ch.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=resp.FromString)
                return fn(req, timeout=60, metadata=[('authorization', 'Bearer ' + token)])

        def verify(srv):
            return call(srv, '/trstctl.v1.Audit/VerifyChain', audit_pb2.VerifyChainRequest(),
                        audit_pb2.VerifyChainResponse)

        def head(srv):
            events, tok = [], ''
            while True:
                r = call(srv, '/trstctl.v1.Audit/ListEvents',
                         audit_pb2.ListEventsRequest(page_size=1000, page_token=tok),
                         audit_pb2.ListEventsResponse)
                events.extend(r.events)
                tok = r.next_page_token
                if not tok:
                    return events[-1].sequence

        def witnessed_and_verified():
            for i in range(30):
                call(a, '/trstctl.v1.Secrets/CreateSecret',
                     secrets_pb2.CreateSecretRequest(name='t/%d' % i, value=b'v'),
                     secrets_pb2.SecretMeta)
            st['head'] = head(a)
            deadline = time.monotonic() + 15
            while True:
                r = verify(a)
                if self.witnessed() == st['head'] and 'local file, NATS' in r.detail:
                    break
                expect(time.monotonic() < deadline, 'head %d not witnessed in 15 s (file: %d; '
                       '%s)' % (st['head'], self.witnessed(), r.detail))
                time.sleep(0.2)
            expect(r.ok and r.checked == st['head'] and 'matches' in r.detail,
                   'untouched chain: %s' % r)
            mode = os.stat(self.witness).st_mode & 0o777
            expect(mode == 0o600, 'checkpoint file mode %o' % mode)
            print('  %s' % r.detail)

        def cut_tail():
            code = a.stop()
            expect(code == 0, 'server exit %r' % code)
            h, keep = st['head'], st['head'] - CUT
            psql(self.dsn, "BEGIN; "
                 "DELETE FROM audit_events WHERE sequence > %d; "
                 "DELETE FROM audit_checkpoints WHERE sequence > %d; "
                 "UPDATE audit_head SET sequence = %d, hash = (SELECT hash FROM audit_events "
                 "WHERE sequence = %d); COMMIT" % (keep, keep, keep, keep))
            rows = psql(self.dsn, 'SELECT max(sequence) FROM audit_events')
            expect(int(rows[0][0]) == keep, 'after the cut: %r' % rows)
            st['keep'] = keep
            st['b'] = self.server()
            checks.server = st['b']
            expect(self.witnessed() == h, 'the restart moved the witness to %d'
                   % self.witnessed())

        def reported():
            r = verify(st['b'])
            print('  %s' % r.detail)
            expect(not r.ok and r.first_bad_sequence == st['keep'] + 1 and
                   'records missing after sequence %d' % st['keep'] in r.detail and
                   'expects the head at sequence %d' % st['head'] in r.detail,
                   'VerifyChain after the cut: %s' % r)

        def cli_reports():
            # a client like any other: the address, plaintext (the server's TLS is off) and
            # the bootstrap token; no database setting. Exit 3: the call found a broken chain.
            env = {k: v for k, v in os.environ.items() if not k.startswith('TRSTCTL_')}
            out = subprocess.run([self.exe, 'audit', 'verify', '--addr', st['b'].addr,
                                  '--plaintext', '--token-file',
                                  os.path.join(self.state, 'bootstrap-token')],
                                 env=env, capture_output=True, text=True, timeout=60)
            expect(out.returncode == 3 and 'BROKEN at sequence %d' % (st['keep'] + 1)
                   in out.stdout and 'records missing after sequence %d' % st['keep']
                   in out.stdout and 'expects the head at sequence %d' % st['head']
                   in out.stdout,
                   'trstctl audit verify: exit %d %s %s' % (out.returncode, out.stdout,
                                                             out.stderr))

        def stream_reports():
            moved = self.witness + '.away'
            os.rename(self.witness, moved)
            try:
                r = verify(st['b'])
            finally:
                os.rename(moved, self.witness)
            print('  %s' % r.detail)
            expect(not r.ok and r.first_bad_sequence == st['keep'] + 1 and 'NATS' in r.detail,
                   'VerifyChain without the local file: %s' % r)

        for name, fn in (('the untouched chain verifies against its witnesses',
                          witnessed_and_verified),
                         ('psql cuts the newest records and checkpoints', cut_tail),
                         ('VerifyChain reports the cut', reported),
                         ('trstctl audit verify reports it too', cli_reports),
                         ('without the local file, JetStream tells', stream_reports)):
            if not checks.run(name, fn):
                break
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main(TruncateTest))
