#!/usr/bin/python3
"""Builds a Go program offline against the generated trstctl Go client.

The generated files (*.pb.go, *_grpc.pb.go, made by protoc in the build folder) are
copied into a GOPATH tree, <gopath>/src/<import path>/, and the program is built in
GOPATH mode (GO111MODULE=off) with that tree first and Debian's Go sources
(/usr/share/gocode: grpc-go, protobuf-go) second. Nothing is downloaded: GOPROXY=off,
GOFLAGS and the user's go env are ignored, and the build cache lives in the build folder.

  go-build.py GO OUTPUT GOPATH_DIR GOCODE IMPORT_PATH MAIN.go GENERATED.go...
"""

import os
import shutil
import subprocess
import sys


def main(argv):
    if len(argv) < 7:
        print('usage: go-build.py GO OUTPUT GOPATH_DIR GOCODE IMPORT_PATH MAIN.go GEN.go...',
              file=sys.stderr)
        return 2
    go, output, gopath, gocode, import_path, main_go = argv[1:7]
    generated = argv[7:]
    pkg_dir = os.path.join(gopath, 'src', *import_path.split('/'))
    os.makedirs(pkg_dir, exist_ok=True)
    wanted = set()
    for g in generated:
        name = os.path.basename(g)
        wanted.add(name)
        shutil.copyfile(g, os.path.join(pkg_dir, name))
    for name in os.listdir(pkg_dir):  # a proto that went away leaves no stale file
        if name not in wanted:
            os.unlink(os.path.join(pkg_dir, name))

    env = {k: v for k, v in os.environ.items() if not k.startswith('GO')}
    env.update({
        'GO111MODULE': 'off',
        'GOPATH': os.path.abspath(gopath) + os.pathsep + gocode,
        'GOCACHE': os.path.abspath(os.path.join(gopath, '..', 'go-cache')),
        'GOENV': 'off',
        'GOFLAGS': '',
        'GOPROXY': 'off',
        'CGO_ENABLED': '0',
    })
    r = subprocess.run([go, 'build', '-trimpath', '-o', os.path.abspath(output),
                        os.path.abspath(main_go)], env=env)
    return r.returncode


if __name__ == '__main__':
    sys.exit(main(sys.argv))
