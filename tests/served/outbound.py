"""Pieces of the served tests of the outbound features (test_telemetry.py, test_assist.py).

Postgres: one PostgreSQL (unix socket, scripts/lib/services.sh) that outlives the servers
of a test, so that a restarted server meets the same database. Receiver: a local HTTP or
HTTPS server (http.server, ssl) on 127.0.0.1 that records every request (method, path,
headers, body) and answers what the test sets: a status and a body, or a handler. And
check_config, which runs `trstctl --check-config` with exactly the given environment.
"""

import http.server
import json
import os
import ssl
import subprocess
import threading
import time

import harness
from harness import expect


class Postgres:
    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        r = subprocess.run(['bash', '-c', '. "$0"; svc_pg_start "$1" >&2 && svc_pg_dsn "$1"',
                            harness.SERVICES_SH, folder],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not r.stdout.strip():
            harness.skip('PostgreSQL cannot start here: %s' % r.stderr.strip()[-400:])
        self.dsn = r.stdout.strip().splitlines()[-1]

    def stop(self):
        subprocess.run(['bash', '-c', '. "$0"; svc_pg_destroy "$1"', harness.SERVICES_SH,
                        self.dir], capture_output=True, timeout=120)


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self):
        return json.loads(self.body.decode('utf-8'))


class Receiver:
    """Records requests; answers (status, body, extra headers) from self.answer, or from
    self.handler(request) when set (it returns the same triple, or None to close the
    connection without an answer)."""

    def __init__(self, cert=None, key=None):
        self.requests = []
        self.cond = threading.Condition()
        self.answer = (200, b'{}', {})
        self.handler = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _serve(self):
                n = int(self.headers.get('Content-Length') or 0)
                req = Request(self.command, self.path, dict(self.headers), self.rfile.read(n))
                with outer.cond:
                    outer.requests.append(req)
                    outer.cond.notify_all()
                    handler, answer = outer.handler, outer.answer
                got = handler(req) if handler else answer
                if got is None:
                    self.close_connection = True
                    return
                status, body, headers = got
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout test)

            do_POST = do_GET = _serve

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=''):
        scheme = 'https' if isinstance(self.httpd.socket, ssl.SSLSocket) else 'http'
        return '%s://127.0.0.1:%d%s' % (scheme, self.port, path)

    def count(self):
        with self.cond:
            return len(self.requests)

    def wait(self, pred, timeout, what):
        """The first request r received so far or within timeout with pred(r)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                expect(left > 0, 'no request %s within %.0f s (%d received)'
                       % (what, timeout, len(self.requests)))
                self.cond.wait(min(left, 0.2))

    def wait_after(self, n, timeout, what):
        """The first request with index >= n."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) <= n:
                left = deadline - time.monotonic()
                expect(left > 0, 'no new request %s within %.0f s' % (what, timeout))
                self.cond.wait(min(left, 0.2))
            return self.requests[n]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def check_config(exe, env, timeout=30):
    """`trstctl --check-config` with exactly env (no TRSTCTL_* of ours leaks in)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith('TRSTCTL_')}
    full.update(env)
    r = subprocess.run([exe, '--check-config'], env=full, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def count_lines(server, msg):
    """How many log lines of server have "msg": msg."""
    n = 0
    for line in server.log().splitlines():
        try:
            if json.loads(line).get('msg') == msg:
                n += 1
        except ValueError:
            pass
    return n
