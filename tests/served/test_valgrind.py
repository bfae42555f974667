#!/usr/bin/python3
"""The served server under valgrind: a mixed workload (health, reflection, an unknown
method, a malformed body, calls without a token summarized by the timer, checkpoint
witnesses, a Watch stream left open), then SIGTERM. The server must exit
0, with no memory error and nothing definitely or indirectly lost.

  test_valgrind.py --trstctl PATH

Skips (77) when valgrind or grpcio is missing, and when the binary is built with a
sanitizer (valgrind and ASan do not mix).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402

import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    valgrind = shutil.which('valgrind')
    if not valgrind:
        harness.skip('valgrind is not installed')
    nm = subprocess.run(['nm', '-D', args.trstctl], capture_output=True, text=True)
    if '__asan_init' in nm.stdout or '__asan_init' in subprocess.run(
            ['nm', args.trstctl], capture_output=True, text=True).stdout:
        harness.skip('the binary is built with AddressSanitizer; valgrind cannot run it')

    tmp = tempfile.mkdtemp(prefix='trstctl-vg-')
    vglog = os.path.join(tmp, 'valgrind.log')
    wrapper = [valgrind, '--leak-check=full', '--show-leak-kinds=definite,indirect',
               '--errors-for-leak-kinds=definite,indirect', '--log-file=' + vglog]
    checks = harness.Checks('valgrind')
    # summaries of unauthenticated calls and checkpoint witnesses every second (and at exit)
    env = {'TRSTCTL_SERVER_TLS_MODE': 'internal', 'TRSTCTL_SERVER_SHUTDOWN_GRACE': '3s',
           'TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL': '1s',
           'TRSTCTL_AUDIT_CHECKPOINT_INTERVAL': '1s'}
    with harness.Server(args.trstctl, env=env, start_timeout=120, wrapper=wrapper) as srv:
        ch = harness.channel(srv.addr, 'tls', root_pem=srv.internal_ca_pem())
        health = health_pb2_grpc.HealthStub(ch)

        def check_health():
            r = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            expect(r.status == health_pb2.HealthCheckResponse.SERVING, 'not SERVING: %s' % r)

        def check_reflection():
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            req = reflection_pb2.ServerReflectionRequest(list_services='')
            names = [s.name for r in stub.ServerReflectionInfo(iter([req]), timeout=30)
                     for s in r.list_services_response.service]
            expect('trstctl.v1.CA' in names, 'list misses trstctl.v1.CA: %s' % names)
            req = reflection_pb2.ServerReflectionRequest(file_containing_symbol='trstctl.v1.Audit')
            files = [f for r in stub.ServerReflectionInfo(iter([req]), timeout=30)
                     for f in r.file_descriptor_response.file_descriptor_proto]
            expect(len(files) >= 2, 'audit.proto and its imports expected, got %d' % len(files))

        def check_errors():
            for path, body, code in [('/trstctl.v1.CA/Nope', b'', grpc.StatusCode.UNIMPLEMENTED),
                                     ('/trstctl.v1.CA/CreateOwner', b'\xff\xff\xff',
                                      grpc.StatusCode.INVALID_ARGUMENT)]:
                try:
                    ch.unary_unary(path)(body, timeout=30)
                    raise AssertionError('%s succeeded' % path)
                except grpc.RpcError as e:
                    expect(e.code() == code, '%s: %s, want %s' % (path, e.code(), code))

        def check_unauthenticated():
            for i in range(20):
                md = [('authorization', 'Bearer junk-%d' % i)] if i % 2 else None
                try:
                    ch.unary_unary('/trstctl.v1.Secrets/GetSecret')(b'', timeout=30, metadata=md)
                    raise AssertionError('a call without a token succeeded')
                except grpc.RpcError as e:
                    expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, '%s' % e.code())
            time.sleep(2.5)  # a summary and a witness written by the timers

        checks.run('health SERVING', check_health)
        checks.run('reflection list and describe', check_reflection)
        checks.run('unknown method and malformed body', check_errors)
        checks.run('calls without a token, summarized', check_unauthenticated)

        # A Watch stream in flight when SIGTERM arrives.
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
        first = next(watch)
        seen = []
        t = threading.Thread(target=lambda: seen.extend(_drain(watch)), daemon=True)
        t.start()

        def check_exit():
            expect(first.status == health_pb2.HealthCheckResponse.SERVING, 'watch: %s' % first)
            srv.signal()
            rc = srv.wait(60)
            expect(rc == 0, 'exit status %s after SIGTERM' % rc)

        checks.run('SIGTERM with a stream in flight -> exit 0', check_exit)
        t.join(10)

    def check_valgrind():
        text = open(vglog).read()
        m = re.search(r'ERROR SUMMARY: (\d+) errors', text)
        expect(m is not None, 'no valgrind summary:\n' + text[-2000:])
        expect(m.group(1) == '0', 'valgrind reports errors:\n' + text[-4000:])
        for kind in ('definitely', 'indirectly'):
            m = re.search(kind + r' lost: ([\d,]+) bytes', text)
            expect(m is None or m.group(1) == '0', '%s lost:\n%s' % (kind, text[-4000:]))

    checks.run('valgrind: no errors, no leak', check_valgrind)
    shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


def _drain(it):
    try:
        for m in it:
            yield m
    except grpc.RpcError:
        return


if __name__ == '__main__':
    sys.exit(main())
