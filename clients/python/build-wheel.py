#!/usr/bin/python3
"""Builds the trstctl Python wheel offline.

Stages a package tree in STAGE (removed first): pyproject.toml and trstctl/ from this
folder with the version set, trstctl/v1/ generated from API_DIR/trstctl/v1/*.proto and
trstctl/health/v1/ from grpc/health/v1/health.proto (protoc --python_out --pyi_out and
grpc_python_plugin). The API protos are compiled from API_DIR, so their modules import
each other as `trstctl.v1` already. The health stubs import `grpc.health.v1`, which the
real grpc package would shadow: that import, and the module name the messages are
built under, are rewritten to `trstctl.health.v1` (the descriptor keeps its file name,
grpc/health/v1/health.proto). Then runs
`python3 -m pip wheel --no-build-isolation --no-deps --no-index` (Debian's setuptools
and wheel; nothing is downloaded) into OUTDIR and checks that WHEEL came out.

  build-wheel.py --protoc P --grpc-plugin P --api-dir D --protobuf-include D
                 --grpc-proto-dir D --version V --stage D --wheel OUTDIR/NAME.whl
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HEALTH = 'grpc/health/v1/health.proto'


def protoc(args, out, includes, protos):
    cmd = [args.protoc] + ['-I' + i for i in includes] + [
        '--python_out=' + out, '--pyi_out=' + out, '--grpc_out=' + out,
        '--plugin=protoc-gen-grpc=' + args.grpc_plugin] + protos
    r = subprocess.run(cmd, cwd=includes[0])
    if r.returncode != 0:
        sys.exit('build-wheel.py: protoc failed (%d): %s' % (r.returncode, ' '.join(cmd)))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def stage(args):
    shutil.rmtree(args.stage, ignore_errors=True)
    os.makedirs(args.stage)
    with open(os.path.join(HERE, 'pyproject.toml')) as f:
        write(os.path.join(args.stage, 'pyproject.toml'),
              f.read().replace('@VERSION@', args.version))
    shutil.copytree(os.path.join(HERE, 'trstctl'), os.path.join(args.stage, 'trstctl'),
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))

    api_protos = sorted(os.path.relpath(p, args.api_dir) for p in
                        glob.glob(os.path.join(args.api_dir, 'trstctl', 'v1', '*.proto')))
    protoc(args, args.stage, [args.api_dir, args.protobuf_include], api_protos)
    write(os.path.join(args.stage, 'trstctl', 'v1', '__init__.py'),
          '"""trstctl.v1: generated from api/trstctl/v1 (see the trstctl package)."""\n')

    gen = os.path.join(args.stage, 'gen-health')
    os.makedirs(gen)
    protoc(args, gen, [args.grpc_proto_dir], [HEALTH])
    dest = os.path.join(args.stage, 'trstctl', 'health', 'v1')
    os.makedirs(dest)
    for name in os.listdir(os.path.join(gen, 'grpc', 'health', 'v1')):
        with open(os.path.join(gen, 'grpc', 'health', 'v1', name)) as f:
            text = f.read()
        # The import in the grpc module, the module name given to the message classes.
        for old, new in (('from grpc.health.v1 import health_pb2',
                          'from trstctl.health.v1 import health_pb2'),
                         ("'grpc.health.v1.health_pb2'", "'trstctl.health.v1.health_pb2'")):
            want = {'health_pb2_grpc.py': old.startswith('from'),
                    'health_pb2.py': not old.startswith('from')}.get(name, False)
            if want and old not in text:
                sys.exit('build-wheel.py: %s has no "%s" to rewrite' % (name, old))
            text = text.replace(old, new)
        write(os.path.join(dest, name), text)
    shutil.rmtree(gen)
    write(os.path.join(dest, '__init__.py'),
          '"""trstctl.health.v1: the grpc.health.v1 stubs (Health.Check, Health.Watch)."""\n')
    write(os.path.join(args.stage, 'trstctl', 'health', '__init__.py'), '')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for opt in ('protoc', 'grpc-plugin', 'api-dir', 'protobuf-include', 'grpc-proto-dir',
                'version', 'stage', 'wheel'):
        ap.add_argument('--' + opt, required=True)
    args = ap.parse_args()
    args.stage = os.path.abspath(args.stage)
    args.api_dir = os.path.abspath(args.api_dir)
    stage(args)
    outdir = os.path.dirname(os.path.abspath(args.wheel))
    os.makedirs(outdir, exist_ok=True)
    if os.path.exists(args.wheel):
        os.unlink(args.wheel)
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update({'PIP_DISABLE_PIP_VERSION_CHECK': '1', 'PYTHONDONTWRITEBYTECODE': '1'})
    env.pop('PYTHONPATH', None)
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
                        '--no-deps', '--no-index', '--no-cache-dir', '--quiet',
                        '--wheel-dir', outdir, args.stage], env=env)
    if r.returncode != 0:
        return r.returncode
    if not os.path.isfile(args.wheel):
        print('build-wheel.py: pip made no %s (in %s: %s)' % (
            os.path.basename(args.wheel), outdir,
            ', '.join(n for n in os.listdir(outdir) if n.endswith('.whl'))), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
