"""Harness for the served tests: runs `trstctl serve` on a kernel-chosen loopback port.

A Server is configured only through the environment (TRSTCTL_*), started with
TRSTCTL_SERVER_ADDR=127.0.0.1:0, and its port is read from the JSON log line that says
"msg":"serving". Its stderr is collected on a thread so that a failing test can show it.
Also here: TLS material made with the openssl command line, the CA bundle and the served
certificate of the internal TLS mode, grpcio channels for each mode, and a small check
runner.

Tests that cannot run here (no trstctl binary, no grpcio, no openssl) exit 77.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES_SH = os.path.join(REPO, 'scripts', 'lib', 'services.sh')

# Every server gets its own PostgreSQL (started by Server unless the caller passes
# TRSTCTL_POSTGRES_DSN) and an evaluation KEK generated in its state folder.
DEFAULT_ENV = {
    'TRSTCTL_KEK_GENERATE': 'true',
    'TRSTCTL_LOG_LEVEL': 'info',
    'TRSTCTL_LOG_FORMAT': 'json',
    'TRSTCTL_SERVER_SHUTDOWN_GRACE': '2s',
    # A kernel-chosen metrics port: servers of parallel tests must not collide on 9464.
    'TRSTCTL_METRICS_ADDR': '127.0.0.1:0',
}


def skip(why):
    print('SKIP: %s' % why)
    sys.exit(SKIP)


def need_grpc():
    try:
        import grpc  # noqa: F401
    except ImportError:
        skip('python grpcio is missing (run with /usr/bin/python3, package python3-grpcio)')


class ServerError(Exception):
    pass


class Server:
    """One `trstctl serve` process. Use as a context manager; it is killed on exit."""

    def __init__(self, exe, env=None, start_timeout=20.0, wrapper=None):
        if not exe or not os.access(exe, os.X_OK):
            skip('trstctl binary not found: %r' % exe)
        self.exe = exe
        self.state_dir = tempfile.mkdtemp(prefix='trstctl-served-')
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith('TRSTCTL_'):
                del self.env[k]
        self.env.update(DEFAULT_ENV)
        self.env['TRSTCTL_SERVER_ADDR'] = '127.0.0.1:0'
        self.env['TRSTCTL_STATE_DIR'] = os.path.join(self.state_dir, 'state')
        self.env.update(env or {})
        self.start_timeout = start_timeout
        self.pg_dir = None
        # 'UID:GID' when the wrapper runs the server as another user than this process:
        # the PostgreSQL this server starts admits that user (SVC_PG_CLIENT, services.sh)
        self.pg_client = None
        self.wrapper = list(wrapper or [])  # e.g. ['valgrind', ...] in front of the binary
        self.proc = None
        self.port = None
        self.lines = []
        self._cond = threading.Condition()
        self._reader = None

    # -- life cycle ------------------------------------------------------------------

    def start_postgres(self):
        """Starts a throwaway PostgreSQL for this server (unix socket in its temp folder)."""
        self.pg_dir = os.path.join(self.state_dir, 'pg-svc')
        os.makedirs(self.pg_dir, exist_ok=True)
        env = dict(os.environ)
        env.pop('SVC_PG_CLIENT', None)
        if self.pg_client:
            env['SVC_PG_CLIENT'] = self.pg_client
        r = subprocess.run(['bash', '-c', '. "$1"; svc_pg_start "$2" >&2 && svc_pg_dsn "$2"',
                            'pg', SERVICES_SH, self.pg_dir],
                           capture_output=True, text=True, timeout=120, env=env)
        if r.returncode != 0 or not r.stdout.strip():
            skip('cannot start PostgreSQL for the served test: %s' % r.stderr.strip()[-500:])
        return r.stdout.strip().splitlines()[-1]

    def stop_postgres(self):
        if self.pg_dir:
            subprocess.run(['bash', '-c', '. "$1"; svc_pg_destroy "$2"', 'pg', SERVICES_SH,
                            self.pg_dir], capture_output=True, timeout=60)
            self.pg_dir = None

    def start(self):
        if not self.env.get('TRSTCTL_POSTGRES_DSN'):
            self.env['TRSTCTL_POSTGRES_DSN'] = self.start_postgres()
        self.proc = subprocess.Popen(self.wrapper + [self.exe, 'serve'], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        with self._cond:
            while self.port is None:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise ServerError('trstctl serve exited with %s before serving'
                                      % self.proc.returncode)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError('trstctl serve did not log "serving" within %.0f s'
                                      % self.start_timeout)
                self._cond.wait(min(left, 0.2))
        return self

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            with self._cond:
                self.lines.append(line)
                if self.port is None:
                    port = serving_port(line)
                    if port is not None:
                        self.port = port
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(5)
        self.stop_postgres()
        return self.proc.returncode

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc):
        self.stop()
        self.stop_postgres()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return False

    # -- facts -------------------------------------------------------------------------

    @property
    def addr(self):
        return '127.0.0.1:%d' % self.port

    def log(self):
        with self._cond:
            return '\n'.join(self.lines)

    def log_tail(self, n=20, width=400):
        with self._cond:
            return '\n'.join(l if len(l) <= width else l[:width] + '...'
                             for l in self.lines[-n:])

    def bootstrap_token(self, timeout=10.0):
        """The admin token the server wrote at first start (TRSTCTL_BOOTSTRAP_TOKEN_FILE)."""
        path = self.env.get('TRSTCTL_BOOTSTRAP_TOKEN_FILE') or os.path.join(
            self.env['TRSTCTL_STATE_DIR'], 'bootstrap-token')
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(path) as f:
                    tok = f.read().strip()
                if tok:
                    return tok
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise ServerError('no bootstrap token in %s' % path)
            time.sleep(0.05)

    def internal_ca_pem(self):
        """The CA bundle of the internal TLS mode (PEM bytes), as the server wrote it to its
        state folder at start-up: the roots its certificate verifies under."""
        return read(os.path.join(self.env['TRSTCTL_STATE_DIR'], 'ca-bundle.pem'))

    def client_files(self, folder):
        """What a client is given: the bootstrap token in folder/token (one line) and, in
        the internal TLS mode, the CA bundle its certificate verifies under in
        folder/ca-bundle.pem. Returns the two paths (the second None when TLS is disabled)."""
        os.makedirs(folder, exist_ok=True)
        token = os.path.join(folder, 'token')
        with open(token, 'w') as f:
            f.write(self.bootstrap_token() + '\n')
        if self.env.get('TRSTCTL_SERVER_TLS_MODE') == 'disabled':
            return token, None
        bundle = os.path.join(folder, 'ca-bundle.pem')
        with open(bundle, 'wb') as f:
            f.write(self.internal_ca_pem())
        return token, bundle


def serving_port(line):
    """The port of a log line that says the server is serving, else None."""
    if '"serving"' not in line:
        return None
    try:
        obj = json.loads(line)
        if obj.get('msg') == 'serving' and 'port' in obj:
            return int(obj['port'])
    except (ValueError, TypeError):
        pass
    m = re.search(r'"msg"\s*:\s*"serving".*"port"\s*:\s*"?(\d+)', line)
    return int(m.group(1)) if m else None


def served_cert(host, port, ca_pem, server_hostname, timeout=5.0):
    """The leaf certificate the server presents on a new connection, as PEM bytes, after
    the handshake verified it with ca_pem for server_hostname (ssl.SSLCertVerificationError
    otherwise)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.set_alpn_protocols(['h2'])
    with socket.create_connection((host, port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=server_hostname) as t:
            der = t.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der).encode()


def loopback_name():
    """This host's name when it resolves to loopback only (here through /etc/hosts): air-gap
    mode admits it as a private endpoint name, as it would a cluster service's name, so the
    guarded client must pass it. Else 127.0.0.1."""
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_UNSPEC,
                                                     socket.SOCK_STREAM)}
    except OSError:
        addrs = set()
    if name != 'localhost' and addrs and all(a.startswith('127.') for a in addrs):
        return name
    return '127.0.0.1'


def free_port():
    """A loopback port nobody listens on (for negative checks only)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# -- TLS material -------------------------------------------------------------------------

def openssl(*args, cwd):
    r = subprocess.run(['openssl'] + list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('openssl %s failed: %s' % (' '.join(args), r.stderr.strip()))


def make_pki(folder):
    """A CA, a server certificate (localhost, 127.0.0.1, ::1) and a client certificate,
    plus a second CA with its own client (must be refused). Returns a dict of paths."""
    if not shutil.which('openssl'):
        skip('openssl command not found')
    p = {k: os.path.join(folder, k) for k in (
        'ca.key', 'ca.pem', 'server.key', 'server.pem', 'client.key', 'client.pem',
        'other-ca.key', 'other-ca.pem', 'other-client.key', 'other-client.pem')}
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    for ca in ('ca', 'other-ca'):
        openssl('req', '-x509', *ec, '-keyout', p[ca + '.key'], '-out', p[ca + '.pem'],
                '-days', '2', '-subj', '/CN=trstctl served test %s' % ca,
                '-addext', 'basicConstraints=critical,CA:TRUE',
                '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=folder)

    def leaf(name, ca, cn, ext):
        csr = os.path.join(folder, name + '.csr')
        extfile = os.path.join(folder, name + '.ext')
        with open(extfile, 'w') as f:
            f.write(ext)
        openssl('req', '-new', *ec, '-keyout', p[name + '.key'], '-out', csr,
                '-subj', '/CN=%s' % cn, cwd=folder)
        openssl('x509', '-req', '-in', csr, '-CA', p[ca + '.pem'], '-CAkey', p[ca + '.key'],
                '-CAcreateserial', '-out', p[name + '.pem'], '-days', '2',
                '-extfile', extfile, cwd=folder)

    # The server certificate may also act as a client: `trstctl --health-check` presents
    # it to the mTLS server it probes.
    leaf('server', 'ca', 'localhost',
         'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n'
         'extendedKeyUsage=serverAuth,clientAuth\n'
         'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n')
    for name, ca in (('client', 'ca'), ('other-client', 'other-ca')):
        leaf(name, ca, 'served-test-' + name,
             'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n'
             'extendedKeyUsage=clientAuth\nsubjectAltName=DNS:served-test-%s\n' % name)
    return p


def read(path):
    with open(path, 'rb') as f:
        return f.read()


# -- grpcio channels ----------------------------------------------------------------------

def channel(addr, mode, root_pem=None, key=None, cert=None):
    """A grpcio channel: mode 'plaintext' or 'tls' (root_pem pinned, name localhost)."""
    import grpc
    if mode == 'plaintext':
        return grpc.insecure_channel(addr)
    creds = grpc.ssl_channel_credentials(root_certificates=root_pem, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(addr, creds,
                               options=[('grpc.ssl_target_name_override', 'localhost')])


def with_token(ch, token):
    """The channel with `authorization: Bearer <token>` added to every call."""
    import collections
    import grpc

    class Details(collections.namedtuple('Details', ('method', 'timeout', 'metadata',
                                                     'credentials', 'wait_for_ready',
                                                     'compression')),
                  grpc.ClientCallDetails):
        pass

    class Auth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
               grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def _details(self, d):
            md = [m for m in (d.metadata or []) if m[0] != 'authorization']
            md.append(('authorization', 'Bearer ' + token))
            return Details(d.method, d.timeout, md, d.credentials,
                           getattr(d, 'wait_for_ready', None), getattr(d, 'compression', None))

        def intercept_unary_unary(self, cont, d, req):
            return cont(self._details(d), req)

        def intercept_unary_stream(self, cont, d, req):
            return cont(self._details(d), req)

        def intercept_stream_unary(self, cont, d, it):
            return cont(self._details(d), it)

        def intercept_stream_stream(self, cont, d, it):
            return cont(self._details(d), it)

    return grpc.intercept_channel(ch, Auth())


# -- checks -------------------------------------------------------------------------------

class Checks:
    """Runs named checks, prints each, keeps going after a failure, sums up."""

    def __init__(self, title, server=None):
        self.title = title
        self.server = server
        self.failed = []
        self.passed = 0

    def run(self, name, fn, *args):
        print('--- %s: %s' % (self.title, name), flush=True)
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (a check fails, the others still run)
            self.failed.append(name)
            print('FAIL %s: %s' % (name, e), flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc()
            if self.server is not None:
                print('server stderr (last lines):\n%s' % self.server.log_tail(), flush=True)
            return False
        self.passed += 1
        print('ok   %s' % name, flush=True)
        return True

    def finish(self):
        print('=== %s: %d passed, %d failed%s' % (
            self.title, self.passed, len(self.failed),
            (': ' + ', '.join(self.failed)) if self.failed else ''), flush=True)
        return 1 if self.failed else 0


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def run_cmd(argv, env=None, timeout=30):
    """Runs a command; returns (exit code, stdout + stderr)."""
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr
