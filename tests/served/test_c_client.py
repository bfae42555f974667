#!/usr/bin/python3
"""The C client (libtrstctl through trstctl-call) against a grpcio echo server on
loopback: what the trstctl server cannot show yet. Checks that the bearer token is sent
as `authorization: Bearer <token>` metadata, that the deadline reaches the server, that
raw bytes arrive unchanged and replies come back unchanged, that a stream delivers every
message in order, that --max-messages cancels the stream on the server side, and that
error statuses and their messages reach the caller.

  test_c_client.py --call PATH
"""

import argparse
import os
import subprocess
import sys
import threading
from concurrent import futures

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402


class Echo(grpc.GenericRpcHandler):
    """/t.Echo/Unary echoes the bytes reversed; /t.Echo/Three streams 3 messages;
    /t.Echo/Forever streams until cancelled; /t.Echo/Fail answers NOT_FOUND."""

    def __init__(self):
        self.seen = {}
        self.cancelled = threading.Event()

    def _record(self, ctx):
        self.seen = {
            'metadata': dict(ctx.invocation_metadata()),
            'time_remaining': ctx.time_remaining(),
        }

    def unary(self, req, ctx):
        self._record(ctx)
        return bytes(reversed(req))

    def three(self, req, ctx):
        self._record(ctx)
        for i in range(3):
            yield bytes([i]) + req

    def forever(self, req, ctx):
        self._record(ctx)
        ctx.add_callback(self.cancelled.set)
        i = 0
        while ctx.is_active() and i < 10000:
            yield bytes([i % 256])
            i += 1
            threading.Event().wait(0.01)

    def fail(self, req, ctx):
        self._record(ctx)
        ctx.abort(grpc.StatusCode.NOT_FOUND, 'owner o-42 not found')

    def service(self, details):
        m = details.method
        if m == '/t.Echo/Unary':
            return grpc.unary_unary_rpc_method_handler(self.unary)
        if m == '/t.Echo/Three':
            return grpc.unary_stream_rpc_method_handler(self.three)
        if m == '/t.Echo/Forever':
            return grpc.unary_stream_rpc_method_handler(self.forever)
        if m == '/t.Echo/Fail':
            return grpc.unary_unary_rpc_method_handler(self.fail)
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--call', required=True)
    args = ap.parse_args()
    if not os.access(args.call, os.X_OK):
        harness.skip('trstctl-call not found: %s' % args.call)

    echo = Echo()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[echo])
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    base = [args.call, '--addr', '127.0.0.1:%d' % port, '--plaintext']

    def call(*argv):
        rc, out = harness.run_cmd(base + list(argv))
        print('  $ trstctl-call %s -> exit %d: %s' % (' '.join(argv), rc,
                                                       out.strip().replace('\n', ' | ')))
        return rc, out

    def token_and_bytes():
        rc, out = call('--token', 'trst_abc123', '/t.Echo/Unary', '--raw-hex', '0102ff00')
        expect(rc == 0, 'echo call failed: %s' % out)
        expect('reply: 4 bytes: 00 ff 02 01' in out, 'reply bytes changed: %s' % out)
        got = echo.seen['metadata'].get('authorization')
        expect(got == 'Bearer trst_abc123', 'authorization metadata: %r' % got)
        rc, out = call('/t.Echo/Unary')
        expect(rc == 0 and 'authorization' not in echo.seen['metadata'],
               'a call without a token still sent authorization: %s' % echo.seen)

    def deadline():
        rc, out = call('--deadline-ms', '5000', '/t.Echo/Unary', '--raw-hex', '01')
        left = echo.seen['time_remaining']
        expect(rc == 0 and left is not None and 3.0 < left <= 5.0,
               'server saw %r s left of a 5 s deadline' % left)
        rc, out = call('/t.Echo/Unary', '--raw-hex', '01')
        left = echo.seen['time_remaining']
        expect(left is None or left > 3600, 'no deadline set, server saw %r s' % left)

    def stream():
        rc, out = call('--stream', '/t.Echo/Three', '--raw-hex', 'aa')
        msgs = [l for l in out.splitlines() if l.startswith('message:')]
        expect(rc == 0 and msgs == ['message: 2 bytes: 00 aa', 'message: 2 bytes: 01 aa',
                                    'message: 2 bytes: 02 aa'],
               'stream messages: %s' % out)

    def stream_cancel():
        rc, out = call('--stream', '--max-messages', '2', '/t.Echo/Forever')
        msgs = [l for l in out.splitlines() if l.startswith('message:')]
        expect(rc == 0 and len(msgs) == 2, 'want 2 messages then stop: %s' % out)
        expect(echo.cancelled.wait(10), 'the server never saw the stream end')

    def error_status():
        rc, out = call('/t.Echo/Fail')
        expect(rc == 1 and 'status: NOT_FOUND (5) message: owner o-42 not found' in out,
               'error status: %s' % out)
        rc, out = call('--expect', 'NOT_FOUND', '/t.Echo/Fail')
        expect(rc == 0, '--expect NOT_FOUND: %s' % out)
        rc, out = call('/t.Echo/Missing')
        expect(rc == 1 and 'UNIMPLEMENTED' in out, 'unknown method: %s' % out)

    def usage_errors():
        for argv in (['/t.Echo/Unary', '--raw-hex', 'zz'], ['--expect', 'NOPE', 'health'],
                     ['nonsense-target'], []):
            rc, out = call(*argv)
            expect(rc == 2, 'usage error %s: want exit 2, got %d' % (argv, rc))

    checks = harness.Checks('C client vs grpcio echo')
    checks.run('bearer token metadata and raw bytes', token_and_bytes)
    checks.run('deadline reaches the server', deadline)
    checks.run('server stream delivers every message in order', stream)
    checks.run('stopping a stream cancels it on the server', stream_cancel)
    checks.run('error status and message reach the caller', error_status)
    checks.run('usage errors exit 2', usage_errors)
    server.stop(None)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
