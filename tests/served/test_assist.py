#!/usr/bin/python3
"""The Assist service (trstctl.v1.Assist/Ask), served, against local fakes of the model
runtimes (docs/api.md "Assist").

  test_assist.py --trstctl PATH

A local HTTP server speaks Ollama's generate API (/api/generate) and the OpenAI chat API
that vLLM serves (/v1/chat/completions) and records every prompt. One PostgreSQL serves the
servers of the test in turn:

1. configurations: ai.enable_api without a model, and cloud mode with air-gap on, are
   refused with their messages;
2. off (TRSTCTL_AI_ENABLE_API unset): Ask is FAILED_PRECONDITION naming the setting;
3. ollama (endpoint without a path: /api/generate is appended): Ask needs a token and the
   action Assist.Ask (a token whose policy lacks it is PERMISSION_DENIED, one that has it
   is answered); with an inventory made first (identities in several states, a
   certificate expiring within 30 days, a secret with a known value, denied calls), the
   answer and model come back, and the prompt the runtime got holds the inventory facts
   and neither the secret's value nor any token; a question holding a token is answered
   with the token redacted (and counted); PEM and password= are redacted; a question with a
   random-looking word is refused (FAILED_PRECONDITION) and never reaches the runtime;
   empty and too long questions are INVALID_ARGUMENT; runtime failures (HTTP 500, a reply
   that is not JSON, one larger than 1 MiB, a dropped connection) are UNAVAILABLE; a call
   deadline shorter than the model's timeout bounds the server's request too; `trstctl
   assist ask` prints the answer alone on stdout;
4. vllm (explicit endpoint path; https verified with TRSTCTL_AI_MODEL_CA_FILE; this host's
   name, which resolves to loopback only, under air-gap with the in-process guard: a
   private endpoint name that start-up admitted): the OpenAI chat request carries the same
   facts, the answer comes from choices[0].message.content, and a token in the question
   is redacted.
Exit 77 when grpcio or PostgreSQL is missing.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import harness
from harness import expect
import outbound

SECRET_VALUE = b'hunter2-KNOWN-VALUE-7f3a9c'
RANDOM_WORD = 'Zq8#Lm2$Rx7!Tv9&Wp4'
PEM = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----'


class Runtime(outbound.Receiver):
    """Ollama and vLLM in one: answers by path; mode ok, 500, garbage, huge, close or slow
    (answers after 3 s). Over TLS with cert and key."""

    def __init__(self, cert=None, key=None):
        super().__init__(cert, key)
        self.mode = 'ok'
        self.handler = self.answer_for

    def answer_for(self, req):
        if self.mode == '500':
            return 500, b'{"error":"model crashed"}', {}
        if self.mode == 'garbage':
            return 200, b'<html>not json</html>', {}
        if self.mode == 'huge':
            return 200, b'{"response":"' + b'x' * (1024 * 1024) + b'"}', {}
        if self.mode == 'close':
            return None
        if self.mode == 'slow':
            time.sleep(3)
        body = req.json()
        if req.path == '/api/generate':
            return 200, json.dumps({'model': body['model'], 'response': ' ANSWER-OLLAMA \n',
                                    'done': True}).encode(), {}
        if req.path == '/v1/chat/completions':
            return 200, json.dumps({'id': 'c1', 'model': body['model'], 'choices': [
                {'index': 0, 'message': {'role': 'assistant', 'content': 'ANSWER-VLLM'},
                 'finish_reason': 'stop'}]}).encode(), {}
        return 404, b'{}', {}

    def prompt(self, req):
        body = req.json()
        if req.path == '/api/generate':
            return body['prompt']
        return body['messages'][0]['content']


def model_cert(folder, host):
    """A test CA and a server certificate for host and 127.0.0.1 it signed: (ca, cert, key)."""
    p = harness.make_pki(folder)
    key, csr, pem, ext = (os.path.join(folder, 'model.' + x) for x in ('key', 'csr', 'pem', 'ext'))
    with open(ext, 'w') as f:
        f.write('basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n'
                'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:127.0.0.1\n'
                % (host if host != '127.0.0.1' else 'localhost'))
    harness.openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=model', cwd=folder)
    harness.openssl('x509', '-req', '-in', csr, '-CA', p['ca.pem'], '-CAkey', p['ca.key'],
                    '-CAcreateserial', '-out', pem, '-days', '2', '-extfile', ext, cwd=folder)
    return p['ca.pem'], pem, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    import grpc
    import assist_pb2
    import assist_pb2_grpc
    import audit_pb2
    import audit_pb2_grpc
    import ca_pb2
    import ca_pb2_grpc
    import policy_pb2
    import policy_pb2_grpc
    import secrets_pb2
    import secrets_pb2_grpc

    tmp = tempfile.mkdtemp(prefix='trstctl-assist-')
    pg = outbound.Postgres(os.path.join(tmp, 'pg'))
    rt = Runtime()
    host = harness.loopback_name()
    ca_pem, cert_pem, key_pem = model_cert(tmp, host)
    rt_tls = Runtime(cert_pem, key_pem)
    checks = harness.Checks('assist')
    servers = []
    st = {}

    def env(**extra):
        e = {'TRSTCTL_POSTGRES_DSN': pg.dsn,
             'TRSTCTL_STATE_DIR': os.path.join(tmp, 'state'),
             'TRSTCTL_SECRETS_KEK_FILE': os.path.join(tmp, 'kek.bin'),
             'TRSTCTL_SERVER_ADDR': '127.0.0.1:0',
             'TRSTCTL_METRICS_ADDR': '127.0.0.1:0',
             'TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL': '1s',
             'TRSTCTL_SERVER_TLS_MODE': 'disabled',
             'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'}
        e.update(extra)
        return e

    def model_env(runtime, endpoint):
        return env(TRSTCTL_AI_ENABLE_API='true', TRSTCTL_AI_MODEL_MODE='local',
                   TRSTCTL_AI_MODEL_RUNTIME=runtime, TRSTCTL_AI_MODEL_NAME='m-' + runtime,
                   TRSTCTL_AI_MODEL_ENDPOINT=endpoint)

    def serve(e):
        s = harness.Server(args.trstctl, e, start_timeout=60)
        servers.append(s)
        checks.server = s
        s.start()
        st['admin'] = s.bootstrap_token()
        st['raw'] = grpc.insecure_channel(s.addr)
        return s

    def stop(s):
        st['raw'].close()
        s.stop()
        checks.server = None

    def stubs(token):
        ch = harness.with_token(st['raw'], token) if token else st['raw']
        return (assist_pb2_grpc.AssistStub(ch), ca_pb2_grpc.CAStub(ch),
                secrets_pb2_grpc.SecretsStub(ch), policy_pb2_grpc.PolicyStub(ch))

    def ask(question, token=None, timeout=60):
        a = stubs(token or st['admin'])[0]
        return a.Ask(assist_pb2.AskRequest(question=question), timeout=timeout)

    def ask_fails(question, code, token=None):
        try:
            ask(question, token)
        except grpc.RpcError as e:
            expect(e.code() == code, '%r: %s %s, want %s' % (
                question[:40], e.code().name, e.details(), code.name))
            return e.details()
        raise AssertionError('%r was answered, want %s' % (question[:40], code.name))

    def configurations():
        cases = (
            ({'TRSTCTL_AI_ENABLE_API': 'true'},
             'ai.enable_api=true needs a local model: set ai.model.mode=local with '
             'ai.model.runtime, ai.model.endpoint and ai.model.name'),
            ({'TRSTCTL_AIRGAP_ENABLED': 'true', 'TRSTCTL_AIRGAP_ENFORCER': 'userspace',
              'TRSTCTL_AI_MODEL_MODE': 'cloud', 'TRSTCTL_AI_MODEL_PROVIDER': 'openai',
              'TRSTCTL_AI_MODEL_NAME': 'gpt', 'TRSTCTL_AI_MODEL_ALLOW_EGRESS': 'true',
              'TRSTCTL_AI_MODEL_ENDPOINT': 'https://api.example.com/v1/chat/completions'},
             'ai.model.mode=cloud is not allowed when air_gap.enabled is true'),
        )
        for extra, msg in cases:
            rc, _, err = outbound.check_config(args.trstctl, env(**extra))
            expect(rc == 1 and msg in err, '%s: exit %d, %r' % (extra, rc, err.strip()))

    def off():
        s = serve(env())
        detail = ask_fails('anything?', grpc.StatusCode.FAILED_PRECONDITION)
        expect('TRSTCTL_AI_ENABLE_API=true' in detail, 'the message does not say how to '
               'turn it on: %s' % detail)
        expect(rt.count() == 0, 'the off service reached the runtime')
        stop(s)

    def inventory():
        _, ca, sec, pol = stubs(st['admin'])
        o = ca.CreateOwner(ca_pb2.CreateOwnerRequest(kind='team', name='assist'), timeout=10)

        def ident(name, ttl, to=()):
            i = ca.CreateIdentity(ca_pb2.CreateIdentityRequest(
                name=name, owner_id=o.id, ttl_seconds=ttl), timeout=10)
            for t in to:
                ca.TransitionIdentity(ca_pb2.TransitionIdentityRequest(id=i.id, to=t),
                                      timeout=30)

        ident('web-expiring.assist.test', 10 * 86400, ['issued'])
        ident('api-long.assist.test', 60 * 86400, ['issued'])
        ident('queued.assist.test', 0)
        ident('gone.assist.test', 60 * 86400, ['issued', 'revoked'])
        sec.CreateSecret(secrets_pb2.CreateSecretRequest(name='assist/db/password',
                                                         value=SECRET_VALUE), timeout=10)
        # a token whose policy lacks Assist.Ask, one whose policy has it
        doc = {'rules': [{'effect': 'allow', 'actions': ['CA.ListOwners'],
                          'resources': ['owner/*']}]}
        pol.PutPolicy(policy_pb2.PutPolicyRequest(name='owners-only',
                                                  document=json.dumps(doc)), timeout=10)
        doc = {'rules': [{'effect': 'allow', 'actions': ['Assist.Ask'],
                          'resources': ['assist']}]}
        pol.PutPolicy(policy_pb2.PutPolicyRequest(name='assist-only',
                                                  document=json.dumps(doc)), timeout=10)
        st['limited'] = pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='limited', policies=['owners-only']), timeout=10).token
        st['asker'] = pol.CreateToken(policy_pb2.CreateTokenRequest(
            name='asker', policies=['assist-only']), timeout=10).token

    def policy_checked():
        try:
            stubs(None)[0].Ask(assist_pb2.AskRequest(question='hi'), timeout=10)
            raise AssertionError('answered without a token')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, 'no token: %s' % e.code())
        detail = ask_fails('hi', grpc.StatusCode.PERMISSION_DENIED, st['limited'])
        expect('Assist.Ask on assist' in detail, 'denial names %r' % detail)
        # calls without a token are audited as a summary once per interval (1 s here)
        audit = audit_pb2_grpc.AuditStub(harness.with_token(st['raw'], st['admin']))
        deadline = time.monotonic() + 15
        while not audit.ListEvents(audit_pb2.ListEventsRequest(type_prefix='auth.denied'),
                                   timeout=10).events:
            expect(time.monotonic() < deadline, 'no auth.denied summary within 15 s')
            time.sleep(0.2)
        r = ask('hi', st['asker'])
        expect(r.answer == 'ANSWER-OLLAMA', 'answer %r' % r.answer)

    def answered_with_facts(rt, runtime_answer, model):
        def check():
            n = rt.count()
            r = ask('Which certificates expire within 30 days?')
            expect(r.answer == runtime_answer and r.model == model and r.redacted == 0,
                   'reply %r' % r)
            req = rt.wait_after(n, 10, 'for the question')
            body = req.json()
            expect(body['model'] == model and body['stream'] is False, 'request %r'
                   % {k: v for k, v in body.items() if k not in ('prompt', 'messages')})
            p = rt.prompt(req)
            for fact in ('Identities: 4 in total', 'requested 1', 'issued 2', 'revoked 1',
                         'Current certificates (neither revoked, replaced nor expired): 2',
                         '1 expire within 30 days', 'identity "web-expiring.assist.test" '
                         '(state issued) expires on', 'Denied calls among the last',
                         'auth.denied, 1 call without a valid token from 127.0.0.1',
                         'reasons missing 1', 'methods /trstctl.v1.Assist/Ask 1',
                         'policy.denied, action Assist.Ask, resource assist, caller',
                         'Question: Which certificates expire within 30 days?'):
                expect(fact in p, 'the prompt lacks %r:\n%s' % (fact, p))
            expect('api-long.assist.test' not in p, 'a certificate valid for 60 days is '
                   'listed as expiring')
            for leak in (SECRET_VALUE.decode(), st['admin'], st['limited'], st['asker'],
                         'trst_'):
                expect(leak not in p, 'the prompt holds %r' % leak[:12])
            if 'printed' not in st:
                st['printed'] = True
                print('  the prompt %s received:\n    %s' % (req.path,
                                                          p.replace('\n', '\n    ')))
        return check

    def redacted():
        n = rt.count()
        r = ask('Why was %s denied? Here is my key %s and password=%s' % (
            st['limited'], PEM, SECRET_VALUE.decode()))
        expect(r.redacted == 3, 'redacted %d, want 3 (token, PEM, password)' % r.redacted)
        p = rt.prompt(rt.wait_after(n, 10, 'for the question with a token'))
        for leak in (st['limited'], 'BEGIN PRIVATE KEY', 'MIIEvQ', SECRET_VALUE.decode()):
            expect(leak not in p, 'the prompt holds %r' % leak[:12])
        expect('Why was [REDACTED] denied? Here is my key [REDACTED PEM BLOCK] and '
               'password=[REDACTED]' in p, 'the question as sent: %s' % p.split('Question:')[-1])

    def refused():
        n = rt.count()
        detail = ask_fails('Is %s a good password?' % RANDOM_WORD,
                           grpc.StatusCode.FAILED_PRECONDITION)
        expect('secret-like' in detail and RANDOM_WORD not in detail, 'message %r' % detail)
        ask_fails('   ', grpc.StatusCode.INVALID_ARGUMENT)
        detail = ask_fails('x' * 4097, grpc.StatusCode.INVALID_ARGUMENT)
        expect('4096' in detail, 'message %r' % detail)
        expect(rt.count() == n, 'a refused question reached the runtime')

    def runtime_failures():
        for mode, words in (('500', 'answered HTTP 500'), ('garbage', 'not a JSON object'),
                            ('huge', 'more than 1048576 bytes'), ('close', 'model runtime')):
            rt.mode = mode
            try:
                detail = ask_fails('Status?', grpc.StatusCode.UNAVAILABLE)
            finally:
                rt.mode = 'ok'
            expect(words in detail and '127.0.0.1' in detail, '%s: %r' % (mode, detail))
            expect('<html>' not in detail and 'xxxx' not in detail, 'reply bytes in %r'
                   % detail)

    def deadline_bounds_the_request():
        # the call's deadline (1.5 s) bounds the server's request too: its worker is free
        # again long before the runtime's 3 s, let alone the 30 s of the model's timeout
        s = servers[-1]
        rt.mode = 'slow'
        try:
            t0 = time.monotonic()
            try:
                ask('Status?', timeout=1.5)
                raise AssertionError('answered past its deadline')
            except grpc.RpcError as e:
                expect(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.code().name)
            while 'timed out' not in s.log():
                expect(time.monotonic() - t0 < 2.8, 'the server still waits on the runtime '
                       'after the call\'s deadline: %s' % s.log_tail(3))
                time.sleep(0.05)
        finally:
            time.sleep(max(0, t0 + 3.2 - time.monotonic()))  # let the fake finish
            rt.mode = 'ok'

    def command_line():
        # `trstctl assist ask`: the answer alone on stdout, the model on stderr
        s = servers[-1]
        token = os.path.join(tmp, 'cli-token')
        with open(token, 'w') as f:
            f.write(st['admin'] + '\n')
        full = {k: v for k, v in os.environ.items() if not k.startswith('TRSTCTL_')}
        r = subprocess.run([args.trstctl, 'assist', 'ask', 'Which certificates expire soon?',
                            '--addr', s.addr, '--plaintext', '--token-file', token],
                           env=full, capture_output=True, text=True, timeout=60)
        expect(r.returncode == 0 and r.stdout == 'ANSWER-OLLAMA\n'
               and 'model: m-ollama' in r.stderr,
               'exit %d, stdout %r, stderr %r' % (r.returncode, r.stdout, r.stderr))
        r = subprocess.run([args.trstctl, 'assist', 'ask', '',
                            '--addr', s.addr, '--plaintext', '--token-file', token],
                           env=full, capture_output=True, text=True, timeout=60)
        expect(r.returncode == 1 and 'INVALID_ARGUMENT' in r.stderr,
               'empty question: exit %d, %r' % (r.returncode, r.stderr))

    def vllm_redacts(rt=rt_tls):
        n = rt.count()
        r = ask('Was %s used?' % st['admin'])
        expect(r.answer == 'ANSWER-VLLM' and r.redacted == 1, 'reply %r' % r)
        req = rt.wait_after(n, 10, 'for the question')
        msgs = req.json()['messages']
        expect(len(msgs) == 1 and msgs[0]['role'] == 'user', 'messages %r' % msgs)
        expect(st['admin'] not in msgs[0]['content'], 'the token went to the runtime')

    try:
        checks.run('refused configurations', configurations)
        checks.run('off: FAILED_PRECONDITION saying how to turn it on', off)
        s = serve(model_env('ollama', rt.url()))
        checks.run('an inventory to ask about', inventory)
        checks.run('policy-checked: token and Assist.Ask', policy_checked)
        checks.run('ollama: answered, the prompt holds facts and no secret',
                   answered_with_facts(rt, 'ANSWER-OLLAMA', 'm-ollama'))
        checks.run('a token, a PEM block and a password in the question are redacted',
                   redacted)
        checks.run('refused questions never reach the runtime', refused)
        checks.run('runtime failures are UNAVAILABLE', runtime_failures)
        checks.run('the call\'s deadline bounds the request to the runtime',
                   deadline_bounds_the_request)
        checks.run('the command line: trstctl assist ask', command_line)
        expect(SECRET_VALUE.decode() not in s.log() and st['admin'] not in s.log(),
               'a secret in the log')
        stop(s)
        # vLLM over https, verified with ai.model.ca_file, by this host's name under air-gap
        # (the in-process guard only: no BPF needed): a private endpoint name start-up
        # admitted passes the guarded client too
        url = 'https://%s:%d/v1/chat/completions' % (host, rt_tls.port)
        print('  vllm at %s (%s)' % (url, 'a name, not an allow_hosts entry'
                                      if host != '127.0.0.1' else 'no loopback-only name'))
        serve(dict(model_env('vllm', url), TRSTCTL_AI_MODEL_CA_FILE=ca_pem,
                   TRSTCTL_AIRGAP_ENABLED='true', TRSTCTL_AIRGAP_ENFORCER='userspace'))
        checks.run('vllm: answered, the prompt holds facts and no secret',
                   answered_with_facts(rt_tls, 'ANSWER-VLLM', 'm-vllm'))
        checks.run('vllm: a token in the question is redacted', vllm_redacts)
    finally:
        for s in servers:
            s.stop()
            shutil.rmtree(s.state_dir, ignore_errors=True)
        rt.close()
        rt_tls.close()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
