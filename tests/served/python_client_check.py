#!/usr/bin/env python3
"""Runs inside a virtual environment where the trstctl wheel is installed (never with the
build tree's flat stubs on the path): calls a served trstctl through the package the way
a user does. Each check prints one line; exit 1 when one failed, 2 on bad arguments.

  python_client_check.py full --addr A --token-file F (--ca-file PEM | --plaintext)
                              --name N --out RESULT.json
      Health/Check; CA CreateOwner, CreateIdentity, IssueCertificate (server-generated
      key), GetCABundle; Secrets CreateSecret, GetSecret, RotateSecret, GetSecret of the
      current and the first version; a channel without a token is UNAUTHENTICATED.
      RESULT.json gets the package's location and the certificate material to verify.
  python_client_check.py untrusted --addr A --token-file F --ca-file PEM
      every call is UNAVAILABLE (the server's certificate is not signed by PEM).
  python_client_check.py refusals --token-file F
      connect() refuses plaintext to a non-loopback address, TLS arguments with
      plaintext, a token with white space and half an mTLS pair, before any call.
"""

import argparse
import json
import os
import sys

import grpc

import trstctl
from trstctl.health.v1 import health_pb2, health_pb2_grpc
from trstctl.v1 import ca_pb2, ca_pb2_grpc, secrets_pb2, secrets_pb2_grpc

failed = []


def check(name, fn):
    try:
        detail = fn()
    except Exception as e:  # noqa: BLE001 (one failed check; the others still run)
        failed.append(name)
        print('FAIL %s: %s: %s' % (name, type(e).__name__, e), flush=True)
        return None
    print('ok   %s: %s' % (name, detail), flush=True)
    return detail


def want(cond, msg):
    if not cond:
        raise AssertionError(msg)


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def full(args):
    tls = {'plaintext': True} if args.plaintext else {'ca_file': args.ca_file}
    channel = trstctl.connect(args.addr, token_file=args.token_file, **tls)
    anon = trstctl.connect(args.addr, **tls)
    ca = ca_pb2_grpc.CAStub(channel)
    secrets = secrets_pb2_grpc.SecretsStub(channel)
    out = {'trstctl': trstctl.__file__, 'v1': ca_pb2.__file__,
           'health': health_pb2.__file__, 'grpc': grpc.__file__}
    dns = args.name + '.example.internal'
    state = {}

    def health():
        r = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=10)
        want(r.status == health_pb2.HealthCheckResponse.SERVING, 'status %s' % r.status)
        return 'SERVING'

    def owner():
        r = ca.CreateOwner(ca_pb2.CreateOwnerRequest(
            kind='workload', name=args.name, email=args.name + '@example.internal',
            request_id='py-owner-' + args.name), timeout=10)
        want(r.id and r.name == args.name, 'unexpected owner %s' % r)
        state['owner'] = r.id
        return 'id %s' % r.id

    def identity():
        r = ca.CreateIdentity(ca_pb2.CreateIdentityRequest(
            kind='x509_certificate', name=args.name, owner_id=state['owner'],
            dns_names=[dns], ttl_seconds=3600), timeout=10)
        want(r.state == 'requested', 'state %r' % r.state)
        state['identity'] = r.id
        return 'id %s state %s' % (r.id, r.state)

    def issue():
        r = ca.IssueCertificate(ca_pb2.IssueCertificateRequest(
            identity_id=state['identity'], ttl_seconds=3600), timeout=30)
        want('BEGIN CERTIFICATE' in r.pem and 'PRIVATE KEY' in r.private_key_pem,
             'no certificate or key in the reply')
        out.update(serial=r.serial, cert_pem=r.pem, chain_pem=r.chain_pem,
                   key_pem=r.private_key_pem, dns=dns)
        return 'serial %s' % r.serial

    def bundle():
        r = ca.GetCABundle(ca_pb2.GetCABundleRequest(), timeout=10)
        want('BEGIN CERTIFICATE' in r.pem, 'no certificate in the bundle')
        out['bundle'] = r.pem
        return '%d bytes' % len(r.pem)

    def secret():
        name = 'apps/%s/db-password' % args.name
        v1, v2 = os.urandom(32), os.urandom(32)
        m = secrets.CreateSecret(secrets_pb2.CreateSecretRequest(
            name=name, value=v1, labels={'app': args.name}), timeout=10)
        want(m.version == 1, 'created version %d' % m.version)
        got = secrets.GetSecret(secrets_pb2.GetSecretRequest(name=name), timeout=10)
        want(got.value == v1 and got.version == 1, 'read back something else')
        m = secrets.RotateSecret(secrets_pb2.RotateSecretRequest(
            name=name, value=v2, expected_version=1), timeout=10)
        want(m.version == 2, 'rotated to version %d' % m.version)
        got = secrets.GetSecret(secrets_pb2.GetSecretRequest(name=name), timeout=10)
        want(got.value == v2 and got.version == 2, 'current is not the rotated value')
        got = secrets.GetSecret(secrets_pb2.GetSecretRequest(name=name, version=1),
                                timeout=10)
        want(got.value == v1, 'version 1 changed')
        return '%s: v1 and v2 read back' % name

    def no_token():
        code = code_of(lambda: ca_pb2_grpc.CAStub(anon).ListOwners(
            ca_pb2.ListOwnersRequest(), timeout=10))
        want(code == grpc.StatusCode.UNAUTHENTICATED, 'got %s' % code)
        return code.name

    check('Health/Check', health)
    check('CA/CreateOwner', owner)
    if 'owner' in state:
        check('CA/CreateIdentity', identity)
    if 'identity' in state:
        check('CA/IssueCertificate', issue)
    check('CA/GetCABundle', bundle)
    check('Secrets round trip', secret)
    check('CA/ListOwners without a token', no_token)
    channel.close()
    anon.close()
    with open(args.out, 'w') as f:
        json.dump(out, f)


def untrusted(args):
    channel = trstctl.connect(args.addr, token_file=args.token_file, ca_file=args.ca_file)

    def call(name, fn):
        code = code_of(fn)
        want(code == grpc.StatusCode.UNAVAILABLE, '%s answered %s' % (name, code))
        return code.name

    check('Health/Check refused', lambda: call('Health/Check', lambda: health_pb2_grpc.HealthStub(
        channel).Check(health_pb2.HealthCheckRequest(), timeout=5)))
    check('CA/CreateOwner refused', lambda: call('CA/CreateOwner', lambda: ca_pb2_grpc.CAStub(
        channel).CreateOwner(ca_pb2.CreateOwnerRequest(kind='user', name='x'), timeout=5)))


def refusals(args):
    def refused(kw, words, addr='127.0.0.1:1'):
        try:
            trstctl.connect(addr, **kw)
        except ValueError as e:
            want(words in str(e), 'message %r lacks %r' % (str(e), words))
            return str(e)
        raise AssertionError('connect(%r, %r) did not refuse' % (addr, kw))

    check('plaintext to 192.0.2.1', lambda: refused(
        {'token_file': args.token_file, 'plaintext': True}, 'only to a loopback address',
        addr='192.0.2.1:8443'))
    check('plaintext with a CA file', lambda: refused(
        {'plaintext': True, 'ca_file': args.token_file}, 'takes no TLS argument'))
    check('token with white space', lambda: refused({'token': 'trst_a b'}, 'white space'))
    check('half an mTLS pair', lambda: refused({'cert_file': 'c.pem'}, 'go together'))
    check('loopback plaintext accepted', lambda: trstctl.connect(
        '[::1]:1', token='trst_x', plaintext=True).close() or 'ok')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['full', 'untrusted', 'refusals'])
    ap.add_argument('--addr')
    ap.add_argument('--token-file', required=True)
    ap.add_argument('--ca-file')
    ap.add_argument('--plaintext', action='store_true')
    ap.add_argument('--name', default='py-client')
    ap.add_argument('--out')
    args = ap.parse_args()
    {'full': full, 'untrusted': untrusted, 'refusals': refusals}[args.mode](args)
    print('=== %s: %s' % (args.mode, 'failed: ' + ', '.join(failed) if failed else 'all ok'))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
