"""The operator's path into a disconnected site, end to end (issue 13).

  1. docs/install.md's walk-through, extracted from the file and run line by line (its
     `export` lines replaced by this test's values: a throwaway signing key, the meson
     build folder, a temp output folder): build the image with buildah from an mmdebstrap
     base, sign it, verify it, `make airgap-bundle`, check the archive's .sha256, unpack,
     check CHECKSUMS.txt, `helm template` with the documented flags;
  2. the bundle holds what docs/install.md lists; the rendered NetworkPolicy and ConfigMap
     hold the air-gap values (the checks of tests/helm/test_chart.py);
  3. bad input fails, saying what and where: a changed byte in the archive (.sha256) and in
     a bundled file (CHECKSUMS.txt), a wrong checksum, an unsigned image, a re-tagged
     image, a changed layer, a wrong key (verify-image.sh and make airgap-bundle);
  4. the bundled image (skopeo -> OCI, umoci unpack): runs as 65532, its own trstctl
     answers --version and --check-config;
  5. in a private network namespace (only lo, with 10.20.0.5 and 10.20.0.6 on it), the
     image's trstctl, chrooted into the unpacked image, starts with the rendered
     environment, pg.internal and nats.internal resolving to those private addresses,
     against a real PostgreSQL (TLS, password) and nats-server -js; it answers
     `trstctl --health-check`, `guard status` says ebpf, armed, zero trips, and the per-pod
     pinned trips map on the bpffs says total 0.

Root is needed (mmdebstrap, buildah, namespaces, BPF); without it, or without the tools
that scripts/install-deps installs, the test exits 77 saying why.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'helm'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'served'))
import chart  # noqa: E402
import test_chart  # noqa: E402
from test_guard import cgroup2_mount  # noqa: E402

SKIP = 77
CHROOT = shutil.which('chroot') or '/usr/sbin/chroot'
INSTALL_MD = os.path.join(REPO, 'docs', 'install.md')
PG_ADDR, NATS_ADDR = '10.20.0.5', '10.20.0.6'
POD_UID = 'e2e-pod-uid'
TOOLS = ('buildah', 'skopeo', 'mmdebstrap', 'umoci', 'gpg', 'shasum', 'make', 'unshare',
         'chroot', 'ip', 'bpftool', 'nats-server', 'openssl', 'psql')


def skip(why):
    print('SKIP: %s' % why)
    sys.exit(SKIP)


def walkthrough(path=INSTALL_MD):
    """The commands of install.md's walk-through: every line of the ```sh blocks of its
    sections 1 and 2, in order; `export` lines (the operator's own values) are returned
    apart."""
    text = open(path).read()
    cmds, exports = [], []
    for section in re.split(r'^## ', text, flags=re.M):
        if not re.match(r'[12]\. ', section):
            continue
        for block in re.findall(r'^```sh\n(.*?)^```', section, flags=re.M | re.S):
            for line in block.splitlines():
                if line.startswith('export '):
                    exports.append(line)
                elif line.strip():
                    cmds.append(line)
    return exports, cmds


class Checks(test_chart.Checks):
    def must(self, ok, what, detail=''):
        if not self.check(ok, what, detail):
            print('stopping: the steps after this one depend on it')
            sys.exit(1)


def run(cmd, env=None, cwd=None, timeout=600, **kw):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, **kw)
    return r.returncode, r.stdout + r.stderr


def throwaway_key(tmp):
    home = os.path.join(tmp, 'gnupg')
    os.mkdir(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    for uid in ('trstctl e2e release <e2e@test.invalid>', 'someone else <other@test.invalid>'):
        subprocess.run(['gpg', '--batch', '--quiet', '--passphrase', '', '--quick-gen-key',
                        uid, 'ed25519', 'sign', 'never'], env=env, check=True,
                       capture_output=True)
    out = subprocess.run(['gpg', '--batch', '--with-colons', '--list-keys'], env=env,
                         check=True, capture_output=True, text=True).stdout
    fprs = [l.split(':')[9] for l in out.splitlines() if l.startswith('fpr:')]
    keys = []
    for i, fpr in enumerate(fprs[:2]):
        path = os.path.join(tmp, 'key%d.asc' % i)
        with open(path, 'wb') as f:
            f.write(subprocess.run(['gpg', '--armor', '--export', fpr], env=env, check=True,
                                   capture_output=True).stdout)
        keys.append(path)
    return home, fprs[0], keys[0], keys[1]


# -- 1 and 2: the walk-through and what it made ---------------------------------------------

def operator_path(c, env, version):
    exports, cmds = walkthrough()
    c.must(len(cmds) >= 10 and exports, 'docs/install.md has a walk-through (%d commands)'
           % len(cmds))
    script = 'set -euo pipefail\n' + '\n'.join(
        'echo "+ %s" >&2\n%s' % (l.replace('\\', '\\\\').replace('"', '\\"')
                                 .replace('$', '\\$').replace('`', '\\`'), l) for l in cmds)
    t0 = time.monotonic()
    rc, out = run(['bash', '-c', script], env=env, cwd=REPO, timeout=1500)
    print('  walk-through: %.0f s' % (time.monotonic() - t0))
    c.must(rc == 0, 'the walk-through of docs/install.md runs to its end', out[-3000:])
    c.check('verify-image: OK' in out, 'verify-image.sh says OK', out[-1500:])
    c.check(re.search(r'trstctl-%s-airgap\.tar\.gz: OK' % re.escape(version), out),
            'shasum -c accepts the archive against its .sha256')
    c.check(re.search(r'^\./images/trstctl-image\.tar: OK$', out, re.M) and
            'FAILED' not in out, 'shasum -c CHECKSUMS.txt accepts every file')
    bundle = os.path.join(env['OUT_DIR'], 'trstctl-%s-airgap' % version)
    want = ['charts/trstctl/Chart.yaml', 'charts/trstctl/values.yaml',
            'manifests/values-airgap.yaml', 'images/trstctl-image.tar',
            'docs/airgap.md', 'docs/install.md', 'docs/configuration.md',
            'docs/telemetry.md', 'CHECKSUMS.txt']
    missing = [w for w in want if not os.path.isfile(os.path.join(bundle, w))]
    c.check(not missing, 'the bundle holds what install.md lists', missing)
    with open(os.path.join(bundle, 'CHECKSUMS.txt')) as f:
        listed = {l.split(None, 1)[1].strip() for l in f if l.strip()}
    files = set()
    for d, _, names in os.walk(bundle):
        for n in names:
            files.add('./' + os.path.relpath(os.path.join(d, n), bundle))
    files -= {'./CHECKSUMS.txt', './rendered.yaml'}
    c.check(listed == files, 'CHECKSUMS.txt covers every other file, with relative names',
            sorted(listed ^ files))
    with open(os.path.join(bundle, 'rendered.yaml')) as f:
        docs = chart.documents(f.read())
    test_chart.egress_checks(c, chart.find(docs, 'NetworkPolicy'))
    data = chart.find(docs, 'ConfigMap')['data']
    for k, v in test_chart.WANT_CONFIG.items():
        c.check(data.get(k) == v, 'rendered ConfigMap %s=%s' % (k, v), data.get(k))
    return bundle, docs


# -- 3: bad input ----------------------------------------------------------------------------

def flip_byte(path, offset):
    with open(path, 'r+b') as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xff]))


def tamper_layer(src, dst):
    """A copy of the docker-archive src whose last layer has one byte changed."""
    with tarfile.open(src) as tin:
        manifest = json.load(tin.extractfile('manifest.json'))
        layer = manifest[0]['Layers'][-1]
        with tarfile.open(dst, 'w') as tout:
            for m in tin.getmembers():
                f = tin.extractfile(m) if m.isfile() else None
                if m.name == layer:
                    data = bytearray(f.read())
                    data[len(data) // 2] ^= 0xff
                    f = io.BytesIO(bytes(data))
                tout.addfile(m, f)
    return layer


def bad_input(c, env, bundle, image, other_key, tmp):
    version = env['VERSION']
    archive = bundle + '.tar.gz'
    name = os.path.basename(archive)

    bad = os.path.join(tmp, 'bad')
    os.mkdir(bad)
    shutil.copy(archive, bad)
    shutil.copy(archive + '.sha256', bad)
    flip_byte(os.path.join(bad, name), os.path.getsize(archive) // 2)
    rc, out = run(['shasum', '-a', '256', '-c', name + '.sha256'], cwd=bad)
    c.check(rc != 0 and '%s: FAILED' % name in out,
            'a changed byte in the archive: shasum -c names it FAILED', out)
    shutil.copy(archive, bad)
    with open(os.path.join(bad, name + '.sha256'), 'w') as f:
        f.write('%s  %s\n' % ('0' * 64, name))
    rc, out = run(['shasum', '-a', '256', '-c', name + '.sha256'], cwd=bad)
    c.check(rc != 0 and '%s: FAILED' % name in out,
            'a wrong checksum in the .sha256: shasum -c names it FAILED', out)
    vals = os.path.join(bundle, 'charts', 'trstctl', 'values.yaml')
    saved = open(vals, 'rb').read()
    flip_byte(vals, 10)
    rc, out = run(['shasum', '-a', '256', '-c', 'CHECKSUMS.txt'], cwd=bundle)
    with open(vals, 'wb') as f:
        f.write(saved)
    c.check(rc != 0 and './charts/trstctl/values.yaml: FAILED' in out,
            'a changed byte in a bundled file: CHECKSUMS.txt names it FAILED', out[-400:])

    verify = [os.path.join(REPO, 'scripts', 'verify-image.sh'), '--key', env['KEY']]
    unsigned = os.path.join(tmp, 'unsigned.tar')
    os.symlink(image, unsigned)
    rc, out = run(verify + [unsigned])
    c.check(rc == 1 and 'not signed' in out and unsigned in out,
            'an unsigned image: verify-image.sh says so, naming it', out)
    benv = dict(env, OUT_DIR=os.path.join(tmp, 'never'))
    rc, out = run(['make', '-s', 'airgap-bundle', 'VERSION=' + version, 'IMAGE=' + unsigned,
                   'KEY=' + env['KEY']], env=benv, cwd=REPO)
    c.check(rc != 0 and 'not signed' in out and 'refusing to bundle' in out and
            not os.path.exists(benv['OUT_DIR']),
            'make airgap-bundle refuses an unsigned image and writes nothing', out[-400:])

    retagged = os.path.join(tmp, 'retagged.tar')
    rc, out = run(['skopeo', 'copy', '-q', 'docker-archive:' + image,
                   'docker-archive:%s:trstctl:9.9.9' % retagged])
    shutil.copy(image + '.sig', retagged + '.sig')
    rc, out = run(verify + [retagged])
    c.check(rc == 1 and 'does not match' in out and 'trstctl:9.9.9' in out,
            'a re-tagged image: the signature does not verify (tag named)', out)

    tampered = os.path.join(tmp, 'tampered.tar')
    layer = tamper_layer(image, tampered)
    shutil.copy(image + '.sig', tampered + '.sig')
    rc, out = run(verify + [tampered])
    c.check(rc == 1 and ('layer %s has digest' % layer) in out,
            'a changed layer: verify-image.sh names the layer', out)

    rc, out = run([verify[0], '--key', other_key, image])
    c.check(rc == 1 and 'does not verify with %s' % other_key in out,
            'a wrong key: verify-image.sh names the key', out)


# -- 4 and 5: the bundled image -------------------------------------------------------------

def unpack(c, bundle, version, tmp):
    oci = os.path.join(tmp, 'oci')
    rc, out = run(['skopeo', 'copy', '-q', 'docker-archive:' +
                   os.path.join(bundle, 'images', 'trstctl-image.tar'),
                   'oci:%s:%s' % (oci, version)])
    c.must(rc == 0, 'skopeo copies the bundled image to an OCI layout', out)
    rt = os.path.join(tmp, 'runtime')
    rc, out = run(['umoci', 'unpack', '--image', '%s:%s' % (oci, version), rt])
    c.must(rc == 0, 'umoci unpacks it', out)
    with open(os.path.join(rt, 'config.json')) as f:
        user = json.load(f)['process']['user']
    c.check(user.get('uid') == 65532 and user.get('gid') == 65532,
            'the image runs as 65532:65532', user)
    return os.path.join(rt, 'rootfs')


def image_cli(c, rootfs, version):
    rc, out = run([CHROOT, '--userspec=65532:65532', rootfs,
                   '/usr/local/bin/trstctl', '--version'], env={'PATH': '/usr/bin:/bin'})
    c.check(rc == 0 and out.strip() == 'trstctl %s' % version,
            "the image's trstctl --version (as 65532): trstctl %s" % version, out)
    # The rendered environment with the air gap on is checked in the serve phase, where
    # the datastore names resolve to private addresses; here: the binary, its libraries and
    # its configuration table work as the image's user.
    env = {'PATH': '/usr/bin:/bin', 'TRSTCTL_POSTGRES_DSN': chart.DOCUMENTED_SETS[0][13:],
           'TRSTCTL_NATS_URL': 'nats://nats.internal:4222', 'TRSTCTL_KEK_GENERATE': 'true',
           'TRSTCTL_STATE_DIR': '/tmp/state'}
    rc, out = run([CHROOT, '--userspec=65532:65532', rootfs, '/usr/local/bin/trstctl',
                   '--check-config'], env=env)
    c.check(rc == 0 and 'air_gap.enabled: false' in out and 'pass' not in out,
            "the image's trstctl --check-config (as 65532; password redacted)", out[-600:])


def server_env(docs):
    env = {'PATH': '/usr/local/bin:/usr/bin:/bin'}
    env.update(chart.container_env(docs, {'metadata.uid': POD_UID}))
    return env


def serve_phase(rootfs, rendered):
    """Inside unshare -n -m: private addresses on lo, PostgreSQL (TLS) and NATS on them,
    the image's trstctl chrooted with the rendered environment."""
    c = Checks()
    with open(rendered) as f:
        docs = chart.documents(f.read())
    tmp = tempfile.mkdtemp(prefix='trstctl-e2e-serve-')
    mounts, procs, cg = [], [], None
    cgroot = cgroup2_mount()
    try:
        for cmd in (['ip', 'link', 'set', 'lo', 'up'],
                    ['ip', 'addr', 'add', PG_ADDR + '/32', 'dev', 'lo'],
                    ['ip', 'addr', 'add', NATS_ADDR + '/32', 'dev', 'lo']):
            c.must(subprocess.run(cmd).returncode == 0, ' '.join(cmd))
        with open(os.path.join(rootfs, 'etc', 'hosts'), 'w') as f:
            f.write('127.0.0.1 localhost\n%s pg.internal\n%s nats.internal\n'
                    % (PG_ADDR, NATS_ADDR))
        start_postgres(c, tmp)
        nats = subprocess.Popen(['nats-server', '-js', '-a', NATS_ADDR, '-p', '4222', '-sd',
                                 os.path.join(tmp, 'nats')], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(nats)
        # The pod's furniture: /proc, /dev, /sys with the cgroup2 tree and the node's bpffs
        # (here a private one), the KEK Secret volume, the emptyDirs /data and /tmp (mode
        # 0777 as Kubernetes makes them: the guard drops CAP_DAC_OVERRIDE after arming).
        for src, dst, how in (('proc', 'proc', ['-t', 'proc']), ('/dev', 'dev', ['--rbind']),
                              ('/sys', 'sys', ['--rbind']),
                              ('bpf', 'sys/fs/bpf', ['-t', 'bpf']),
                              ('tmpfs', 'tmp', ['-t', 'tmpfs']),
                              ('tmpfs', 'data', ['-t', 'tmpfs', '-o', 'mode=0777'])):
            target = os.path.join(rootfs, dst)
            c.must(subprocess.run(['mount'] + how + [src, target]).returncode == 0,
                   'mount %s on %s' % (src, target))
            mounts.append(target)
        kekdir = os.path.join(rootfs, 'etc/trstctl/kek')
        os.makedirs(kekdir, exist_ok=True)
        with open(os.path.join(kekdir, 'kek.bin'), 'wb') as f:
            f.write(os.urandom(32))
        os.chmod(os.path.join(kekdir, 'kek.bin'), 0o440)
        os.chown(os.path.join(kekdir, 'kek.bin'), 0, 65532)  # the pod's fsGroup
        env = server_env(docs)
        # The pod's cgroup (the kubelet's pod<UID> under the cgroup2 root); the init
        # container finds it by the pod's uid, as in the rendered command.
        cg = 'pod' + POD_UID
        c.must(cgroot is not None, 'a cgroup2 mount')
        os.makedirs(os.path.join(cgroot, cg), exist_ok=True)
        # The init container: `trstctl guard attach` with the BPF rights, the node's bpffs
        # and cgroupfs, then it exits; the pins go to 65532.
        init = chart.container(docs, 'guard-attach')
        ienv = {'PATH': '/usr/local/bin:/usr/bin:/bin'}
        ienv.update(chart.container_env(docs, {'metadata.uid': POD_UID}, 'guard-attach'))
        host_cg = os.path.join(rootfs, 'host', 'cgroup')
        os.makedirs(host_cg, exist_ok=True)
        c.must(subprocess.run(['mount', '--bind', cgroot, host_cg]).returncode == 0,
               'the node cgroupfs for the init container')
        mounts.append(host_cg)
        argv = [a.replace('$(POD_UID)', POD_UID) for a in init['command']]
        rc, out = run([CHROOT, rootfs] + argv, env=ienv, timeout=60)
        c.must(rc == 0, 'the init container (%s) attaches and pins the guard'
               % ' '.join(argv[1:3]), out[-800:])
        pins = os.path.join(rootfs, 'sys/fs/bpf/trstctl', POD_UID)
        c.check(os.stat(os.path.join(pins, 'trips')).st_uid == 65532,
                'the per-pod pins are on the node\'s bpffs, the counters owned by 65532',
                pins)
        # The trstctl container sees its own pin folder (subPathExpr) at the rendered path.
        pin_path = env['TRSTCTL_AIRGAP_BPF_PIN_PATH']
        target = os.path.join(rootfs, pin_path.lstrip('/'))
        os.makedirs(target, exist_ok=True)
        c.must(subprocess.run(['mount', '--bind', pins, target]).returncode == 0,
               'the pin folder mounted for the trstctl container')
        mounts.append(target)
        c.check(env.get('TRSTCTL_AIRGAP_ENFORCER') == 'pinned',
                'the trstctl container runs the pinned guard', env.get('TRSTCTL_AIRGAP_ENFORCER'))
        rc, out = run([CHROOT, rootfs, '/usr/local/bin/trstctl', '--check-config'], env=env)
        c.check(rc == 0 and re.search(r'^air_gap\.enabled: true$', out, re.M) and
                re.search(r'^air_gap\.enforcer: pinned$', out, re.M),
                "the image's trstctl --check-config passes the rendered environment "
                '(air_gap lines)', 'exit %s\n%s' % (rc, out[:1500]))
        log = open(os.path.join(tmp, 'server.log'), 'w+')
        procs_file = os.path.join(cgroot, cg, 'cgroup.procs')

        def into_pod():  # the trstctl container's processes live in the pod's cgroup
            with open(procs_file, 'w') as f:
                f.write(str(os.getpid()))

        # 65532 with no capability: chroot's --userspec drops root before the exec
        srv = subprocess.Popen([CHROOT, '--userspec=65532:65532', rootfs,
                                '/usr/local/bin/trstctl', 'serve'], env=env, stdout=log,
                               stderr=subprocess.STDOUT, preexec_fn=into_pod)
        procs.append(srv)
        healthy, out = False, ''
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.poll() is None:
            rc, out = run([CHROOT, rootfs, '/usr/local/bin/trstctl', '--health-check'],
                          env=env, timeout=30)
            if rc == 0:
                healthy = True
                break
            time.sleep(0.5)
        log.seek(0)
        logtext = log.read()
        c.must(healthy, "the image's trstctl --health-check answers SERVING "
               '(rendered environment, private names, real PostgreSQL and NATS)',
               out + '\n' + logtext[-2000:])
        rc, out = run([CHROOT, rootfs, '/usr/local/bin/trstctl', 'guard', 'status',
                       '--json'], env=env, timeout=30)
        st = json.loads(out) if rc == 0 else {}
        # the API names the kernel guard "ebpf" (API.md), whoever loaded it
        # proto3 JSON (`-o json`): lowerCamelCase names, 64-bit counters as strings
        c.check(st.get('enforcer') == 'ebpf' and st.get('armed') is True and
                st.get('trips') == '0' and int(st.get('tripwireHits', '0')) >= 1,
                'guard status: ebpf (pinned by the init container), armed, 0 trips, '
                'tripwire hit', out[-600:])
        pin = os.path.join(rootfs, 'sys/fs/bpf/trstctl', POD_UID, 'trips')
        rc, out = run(['bpftool', '-j', 'map', 'dump', 'pinned', pin])
        v = json.loads(out)[0]['formatted']['value'] if rc == 0 else {}
        c.check(v.get('total') == 0 and v.get('tripwire', 0) >= 1,
                'the per-pod pinned trips map, read on the node: total 0', out[-400:])
        srv.send_signal(signal.SIGTERM)
        c.check(srv.wait(20) == 0, 'the server stops on SIGTERM with status 0')
        print('  server log tail:\n' + '\n'.join('    ' + l[:200] for l in logtext.splitlines()[-5:]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        stop_postgres(tmp)
        for m in reversed(mounts):
            subprocess.run(['umount', '-l', m])
        if cg and cgroot and os.path.isdir(os.path.join(cgroot, cg)):
            try:
                os.rmdir(os.path.join(cgroot, cg))
            except OSError as e:
                print('warning: cgroup %s left: %s' % (cg, e))
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if c.failed else 0


SERVICES = os.path.join(REPO, 'scripts', 'lib', 'services.sh')


def svc(script, *args):
    r = subprocess.run(['bash', '-c', '. "$0"; ' + script, SERVICES] + list(args),
                       capture_output=True, text=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


def start_postgres(c, tmp):
    """PostgreSQL on PG_ADDR:5432 with TLS and the documented user:pass (scram)."""
    d = os.path.join(tmp, 'pg')
    rc, out = svc('svc_pg_start "$1" 5432', d)
    c.must(rc == 0, 'PostgreSQL starts', out)
    data = os.path.join(d, 'pg')
    rc, out = run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                   'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=pg.internal',
                   '-keyout', os.path.join(data, 'server.key'),
                   '-out', os.path.join(data, 'server.crt')])
    c.must(rc == 0, 'a TLS certificate for PostgreSQL', out)
    st = os.stat(data)
    for n in ('server.key', 'server.crt'):
        os.chown(os.path.join(data, n), st.st_uid, st.st_gid)
        os.chmod(os.path.join(data, n), 0o600)
    # services.sh asks every connection for a password (scram-sha-256, also over TCP from
    # PG_ADDR); the superuser's comes from the password file its DSN names.
    rc, dsn = svc('svc_pg_dsn "$1"', d)
    c.must(rc == 0, 'the DSN of the services PostgreSQL', dsn)
    sql = ("CREATE ROLE \"user\" LOGIN SUPERUSER PASSWORD 'pass'; ALTER SYSTEM SET ssl = on; "
           "ALTER SYSTEM SET listen_addresses = '127.0.0.1,%s'" % PG_ADDR)
    for stmt in sql.split('; '):
        rc, out = run(['psql', dsn, '-wXq', '-v', 'ON_ERROR_STOP=1', '-c', stmt])
        c.must(rc == 0, stmt.split(' PASSWORD')[0], out)
    rc, out = svc('svc_pg_stop "$1" && svc_pg_start "$1" 5432', d)
    c.must(rc == 0, 'PostgreSQL restarts with TLS on %s:5432' % PG_ADDR, out)
    rc, out = run(['psql', 'postgres://user:pass@%s:5432/trstctl?sslmode=require' % PG_ADDR,
                   '-XAtc', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'])
    c.must(rc == 0 and out.strip() == 't', 'user:pass reaches trstctl over TLS', out)
    return d


def stop_postgres(tmp):
    svc('svc_pg_destroy "$1"', os.path.join(tmp, 'pg'))


# -- main ------------------------------------------------------------------------------------

def main():
    if len(sys.argv) == 4 and sys.argv[1] == '--serve-phase':
        return serve_phase(sys.argv[2], sys.argv[3])
    builddir = os.path.abspath(sys.argv[sys.argv.index('--builddir') + 1])
    if os.geteuid() != 0:
        skip('needs root: mmdebstrap, buildah, network and mount namespaces, BPF')
    os.environ['PATH'] = os.path.join(REPO, '.tools', 'bin') + ':' + os.environ['PATH']
    missing = [t for t in TOOLS + ('helm',) if not shutil.which(t)]
    if missing:
        skip('missing tools (scripts/install-deps installs them): %s' % ' '.join(missing))
    version = subprocess.run([os.path.join(builddir, 'server', 'trstctl'), '--version'],
                             capture_output=True, text=True).stdout.split()[-1]
    c = Checks()
    tmp = tempfile.mkdtemp(prefix='trstctl-e2e-')
    try:
        home, fpr, key, other_key = throwaway_key(tmp)
        image = os.path.join(builddir, 'image', 'trstctl-%s-image.tar' % version)
        env = dict(os.environ, VERSION=version, IMAGE=image, OUT_DIR=os.path.join(tmp, 'dist'),
                   KEY=key, KEY_FPR=fpr, GNUPGHOME=home, TRSTCTL_BUILDDIR=builddir)
        bundle, docs = operator_path(c, env, version)
        bad_input(c, env, bundle, image, other_key, tmp)
        rootfs = unpack(c, bundle, version, tmp)
        image_cli(c, rootfs, version)
        if c.failed:
            return 1
        r = subprocess.run(['unshare', '-n', '-m', '--propagation', 'private',
                            sys.executable, __file__, '--serve-phase', rootfs,
                            os.path.join(bundle, 'rendered.yaml')])
        return r.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
