"""Shared pieces of the durable-spine tests (test_kek_rotate.py, test_crash.py).

A server here keeps its state across restarts: the caller owns the folder with the state
directory and the KEK files, and passes the DSN of a PostgreSQL that outlives each server,
so that a restarted `trstctl serve` (harness.Server) meets the same database, KEK and
bootstrap token. Servers are plaintext on loopback (the transport is not under test).
"""

import os
import subprocess

import harness
from harness import expect


def make_kek(path):
    """Writes 32 random bytes to path with mode 0600 (the KEK file rules)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(os.urandom(32))
    return path


def server_env(folder, dsn, kek_file, **extra):
    """The environment of a server whose state lives in folder (kept across restarts)."""
    env = {
        'TRSTCTL_POSTGRES_DSN': dsn,
        'TRSTCTL_STATE_DIR': os.path.join(folder, 'state'),
        'TRSTCTL_SECRETS_KEK_FILE': kek_file,
        'TRSTCTL_KEK_GENERATE': 'false',
        'TRSTCTL_SERVER_TLS_MODE': 'disabled',
        'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
    }
    env.update(extra)
    return env


def psql(dsn, sql):
    """Runs one query on the database; returns the rows as lists of text fields."""
    r = subprocess.run(['psql', '-d', dsn, '-XAtq', '-F', '\t', '-v', 'ON_ERROR_STOP=1',
                        '-c', sql], capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, 'psql %r: %s' % (sql[:80], r.stderr.strip()))
    return [line.split('\t') for line in r.stdout.splitlines() if line]


class Api:
    """grpcio stubs of Secrets, CA and Audit on a plaintext channel with a token."""

    def __init__(self, server, token):
        import grpc
        import audit_pb2
        import audit_pb2_grpc
        import ca_pb2
        import ca_pb2_grpc
        import secrets_pb2
        import secrets_pb2_grpc
        self.grpc = grpc
        self.audit_pb2, self.ca_pb2, self.secrets_pb2 = audit_pb2, ca_pb2, secrets_pb2
        self.raw = grpc.insecure_channel(server.addr)
        ch = harness.with_token(self.raw, token)
        self.secrets = secrets_pb2_grpc.SecretsStub(ch)
        self.ca = ca_pb2_grpc.CAStub(ch)
        self.audit = audit_pb2_grpc.AuditStub(ch)

    def close(self):
        self.raw.close()

    def create_secret(self, name, value, timeout=10, request_id=''):
        return self.secrets.CreateSecret(self.secrets_pb2.CreateSecretRequest(
            name=name, value=value, request_id=request_id), timeout=timeout)

    def rotate_secret(self, name, value, timeout=10):
        return self.secrets.RotateSecret(self.secrets_pb2.RotateSecretRequest(
            name=name, value=value), timeout=timeout)

    def get_secret(self, name, version=0, timeout=10):
        return self.secrets.GetSecret(self.secrets_pb2.GetSecretRequest(
            name=name, version=version), timeout=timeout)

    def verify_chain(self, timeout=60):
        return self.audit.VerifyChain(self.audit_pb2.VerifyChainRequest(), timeout=timeout)

    def events(self, type_prefix='', timeout=30):
        """Every audit record (all pages) whose type starts with type_prefix."""
        out, token = [], ''
        while True:
            page = self.audit.ListEvents(self.audit_pb2.ListEventsRequest(
                type_prefix=type_prefix, page_size=1000, page_token=token), timeout=timeout)
            out.extend(page.events)
            token = page.next_page_token
            if not token:
                return out

    def issue(self, tag):
        """Owner -> identity -> issued: returns the certificate PEM (the CA key must open)."""
        o = self.ca.CreateOwner(self.ca_pb2.CreateOwnerRequest(kind='workload',
                                                               name='owner-' + tag), timeout=10)
        name = '%s.spine.test' % tag
        i = self.ca.CreateIdentity(self.ca_pb2.CreateIdentityRequest(
            kind='x509_certificate', name=name, owner_id=o.id, dns_names=[name]), timeout=10)
        t = self.ca.TransitionIdentity(self.ca_pb2.TransitionIdentityRequest(
            id=i.id, to='issued', reason='spine test'), timeout=30)
        expect(t.state == 'issued' and 'BEGIN CERTIFICATE' in t.certificate.pem,
               'TransitionIdentity -> %r' % t.state)
        return t.certificate.pem
