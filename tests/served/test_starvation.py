#!/usr/bin/python3
"""Served test: callers without a token cannot starve what the operator needs.

gRPC streams (server.max_streams 16, of which 8 without a token, 4 per connection):
- one connection gets 4 tokenless Health/Watch streams; its 5th is RESOURCE_EXHAUSTED
  `too many streams on this connection: at most 4 at a time`, while another connection
  still opens one; the places come back when the streams end;
- 16 tokenless Health/Watch streams over 4 connections: 8 run, 8 are RESOURCE_EXHAUSTED
  `too many streams without a token ...`; with those 8 still open, the admin's
  Audit.WatchEvents opens and receives the audit event of an owner created meanwhile, and a
  tokenless WatchEvents is UNAUTHENTICATED (it never takes a place).

The metrics listener (metrics.max_connections 64, metrics.read_timeout 15s):
- 100 half-open TCP connections (each sent part of a request line) do not keep /healthz
  and /metrics from answering, long before any read timeout could free a place: the
  connections idle longest were closed to make room; the rest are closed by the read
  timeout.

usage: test_starvation.py --trstctl PATH
"""

import argparse
import json
import select
import socket
import sys
import time
import urllib.request

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import audit_pb2  # noqa: E402
import audit_pb2_grpc  # noqa: E402
import ca_pb2  # noqa: E402
import ca_pb2_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

MAX_STREAMS, MAX_UNAUTH, PER_CONN = 16, 8, 4
HTTP_MAX_CONNS, HTTP_READ_TIMEOUT_S, HALF_OPEN = 64, 15, 100
SERVING = health_pb2.HealthCheckResponse.SERVING
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def connection(addr, n):
    """A channel on a connection of its own (no shared subchannel between channels)."""
    return grpc.insecure_channel(addr, options=[('grpc.use_local_subchannel_pool', 1),
                                                ('grpc.primary_user_agent', 'conn-%d' % n)])


def open_watch(ch):
    """A tokenless Health/Watch: (call, None) once its first SERVING came, or
    (None, RpcError) when it was refused."""
    call = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=''),
                                                timeout=120)
    try:
        first = next(call)
    except grpc.RpcError as e:
        return None, e
    expect(first.status == SERVING, 'Watch: first status %s' % first.status)
    return call, None


def expect_refused(err, words):
    expect(err is not None, 'the stream was admitted; want RESOURCE_EXHAUSTED (%s)' % words)
    expect(err.code() == EXHAUSTED and words in (err.details() or ''),
           'want RESOURCE_EXHAUSTED "%s...", got %s %r' % (words, err.code(), err.details()))


class Suite:
    def __init__(self, server):
        self.server = server
        self.token = server.bootstrap_token()
        self.n = 0

    def conn(self):
        self.n += 1
        return connection(self.server.addr, self.n)

    def per_connection(self):
        p, q = self.conn(), self.conn()
        held = []
        for i in range(PER_CONN):
            call, err = open_watch(p)
            expect(call is not None, 'watch %d on one connection refused: %s' % (i + 1, err))
            held.append(call)
        _, err = open_watch(p)
        expect_refused(err, 'too many streams on this connection: at most %d at a time'
                       % PER_CONN)
        print('  5th stream on one connection: %s "%s"' % (err.code().name, err.details()))
        call, err = open_watch(q)
        expect(call is not None, 'another connection was refused too: %s' % err)
        held.append(call)
        for c in held:
            c.cancel()
        # the places come back once the handlers see the cancellation
        deadline = time.monotonic() + 10
        while True:
            call, err = open_watch(p)
            if call is not None:
                call.cancel()
                break
            expect(time.monotonic() < deadline,
                   'no place came back 10 s after the streams ended: %s' % err.details())
            time.sleep(0.1)
        for ch in (p, q):
            ch.close()

    def tokenless_flood(self):
        chans = [self.conn() for _ in range(4)]
        held, refused = [], []
        for ch in chans:
            for _ in range(PER_CONN):
                call, err = open_watch(ch)
                (held if call is not None else refused).append(call or err)
        print('  %d tokenless watches over %d connections: %d open, %d refused'
              % (len(chans) * PER_CONN, len(chans), len(held), len(refused)))
        expect(len(held) == MAX_UNAUTH, 'want %d open, got %d' % (MAX_UNAUTH, len(held)))
        for err in refused:
            expect_refused(err, 'too many streams without a token on this server: at most %d'
                           % MAX_UNAUTH)
        print('  refused with: "%s"' % refused[0].details())
        try:
            self.admin_watch_while_flooded()
        finally:
            for c in held:
                c.cancel()
            for ch in chans:
                ch.close()

    def admin_watch_while_flooded(self):
        ch = harness.with_token(self.conn(), self.token)
        name = 'starvation-%d' % int(time.time() * 1000)
        events = audit_pb2_grpc.AuditStub(ch).WatchEvents(
            audit_pb2.WatchEventsRequest(after_sequence=0, type_prefix='owner.'), timeout=60)
        owner = ca_pb2_grpc.CAStub(ch).CreateOwner(
            ca_pb2.CreateOwnerRequest(kind='team', name=name), timeout=30)
        seen = None
        for e in events:
            if e.type == 'owner.created' and (owner.id in e.resource or name in e.data_json):
                seen = e
                break
        events.cancel()
        expect(seen is not None, 'WatchEvents ended without the owner.created event')
        print('  admin WatchEvents received #%d %s %s while the tokenless share was full'
              % (seen.sequence, seen.type, seen.resource))
        # the share is still full, and a tokenless WatchEvents takes no place at all
        _, err = open_watch(self.conn())
        expect_refused(err, 'too many streams without a token')
        bare = audit_pb2_grpc.AuditStub(self.conn()).WatchEvents(
            audit_pb2.WatchEventsRequest(), timeout=30)
        try:
            next(bare)
            raise AssertionError('a tokenless WatchEvents was served')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                   'tokenless WatchEvents: want UNAUTHENTICATED, got %s %r'
                   % (e.code(), e.details()))
        ch.close()

    # -- the metrics listener ---------------------------------------------------------

    def metrics_port(self):
        for line in self.server.log().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get('msg') == 'metrics serving':
                return int(obj['port'])
        raise AssertionError('no "metrics serving" line in the log')

    def get(self, port, path, timeout):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open('http://127.0.0.1:%d%s' % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()

    def half_open_flood(self):
        port = self.metrics_port()
        socks = []
        try:
            for _ in range(HALF_OPEN):
                s = socket.create_connection(('127.0.0.1', port), timeout=5)
                s.sendall(b'GET /heal')
                socks.append(s)
            t0 = time.monotonic()
            # far below the read timeout: no place was freed by a timeout
            bound = HTTP_READ_TIMEOUT_S - 5
            status, body = self.get(port, '/healthz', bound)
            expect(status == 200 and body == 'ok\n', '/healthz: %s %r' % (status, body))
            status, body = self.get(port, '/metrics', bound)
            expect(status == 200 and '# TYPE' in body, '/metrics: %s %r' % (status, body[:200]))
            took = time.monotonic() - t0
            print('  %d half-open connections (limit %d): /healthz and /metrics answered in '
                  '%.3f s' % (HALF_OPEN, HTTP_MAX_CONNS, took))
            expect(took < bound, 'the probes took %.1f s' % took)
            closed = closed_by_server(socks, 1)
            print('  %d of them closed to make room' % len(closed))
            expect(len(closed) >= HALF_OPEN - HTTP_MAX_CONNS,
                   'only %d half-open connections were closed' % len(closed))
            rest = [s for s in socks if s not in closed]
            late = closed_by_server(rest, HTTP_READ_TIMEOUT_S + 10)
            took = time.monotonic() - t0
            print('  the other %d closed by the read timeout (%d s) after %.1f s'
                  % (len(late), HTTP_READ_TIMEOUT_S, took))
            expect(len(late) == len(rest), '%d half-open connections still open after %.0f s'
                   % (len(rest) - len(late), took))
        finally:
            for s in socks:
                s.close()


def closed_by_server(socks, timeout):
    """The sockets of socks the server closed (EOF or reset) within timeout seconds."""
    deadline = time.monotonic() + timeout
    left, closed = list(socks), []
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            break
        ready, _, _ = select.select(left, [], [], wait)
        for s in ready:
            try:
                if s.recv(4096):
                    continue  # a reply (an error page) is not a close: read on
            except (ConnectionResetError, socket.timeout):
                pass
            closed.append(s)
            left.remove(s)
    return closed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    env = {'TRSTCTL_SERVER_TLS_MODE': 'disabled', 'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
           'TRSTCTL_SERVER_MAX_STREAMS': str(MAX_STREAMS),
           'TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS': str(MAX_UNAUTH),
           'TRSTCTL_SERVER_MAX_STREAMS_PER_CONNECTION': str(PER_CONN),
           'TRSTCTL_METRICS_MAX_CONNECTIONS': str(HTTP_MAX_CONNS),
           'TRSTCTL_METRICS_READ_TIMEOUT': '%ds' % HTTP_READ_TIMEOUT_S}
    server = harness.Server(args.trstctl, env=env)
    try:
        server.start()
    except harness.ServerError as e:
        print('FAIL start: %s\nserver stderr:\n%s' % (e, server.log()))
        server.stop()
        return 1
    with server:
        s = Suite(server)
        checks = harness.Checks('starvation', server)
        checks.run('a 5th stream on one connection -> RESOURCE_EXHAUSTED naming the limit',
                   s.per_connection)
        checks.run('tokenless Health/Watch flood fills its share; the admin WatchEvents '
                   'still opens and receives an event', s.tokenless_flood)
        checks.run('100 half-open connections do not starve /healthz and /metrics',
                   s.half_open_flood)
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
