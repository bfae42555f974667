#!/usr/bin/python3
"""Docs-vs-code test for docs/configuration.md.

usage: test-docs.py <cfg-check-config> <source-root>

Every variable the code reads must be documented, and every documented variable must be
read: the settings table (`cfg-check-config --describe`) and any "TRSTCTL_*" string literal
in server/ sources are compared with the reference tables of docs/configuration.md, in
order, with their JSON keys and defaults. The --check-config lines must follow the same
order.
"""
import os
import re
import subprocess
import sys

ROW = re.compile(r'^\| `(TRSTCTL_[A-Z0-9_]+)` \| `([^`]+)` \| (`[^`]*`|\(unset\)) \|')
STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')
NAME = re.compile(r'\b(TRSTCTL_[A-Z0-9_]*[A-Z0-9])')


def main():
    exe, root = sys.argv[1], sys.argv[2]
    if not os.access(exe, os.X_OK):
        print('SKIP: %s is not built' % exe)
        return 77
    out = subprocess.run([exe, '--describe'], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    described = [line.split('\t') for line in out.splitlines()]
    config_file = described[0][0]
    table = described[1:]
    errors = []

    # the variables any server code names in a string literal
    literals = set()
    for d, _, files in os.walk(os.path.join(root, 'server')):
        for f in files:
            if f.endswith('.c') and not f.startswith('test-'):
                with open(os.path.join(d, f), errors='replace') as fh:
                    for lit in STRING.findall(fh.read()):
                        literals.update(NAME.findall(lit))

    doc_path = os.path.join(root, 'docs', 'configuration.md')
    with open(doc_path) as fh:
        doc = fh.read()
    rows = []
    for line in doc.splitlines():
        m = ROW.match(line)
        if m:
            default = '' if m.group(3) == '(unset)' else m.group(3)[1:-1]
            rows.append((m.group(1), m.group(2), default))

    code_vars = [t[0] for t in table]
    doc_vars = [r[0] for r in rows]
    for v in code_vars:
        if v not in doc_vars:
            errors.append('%s is read by the code but not documented in a table' % v)
    for v in sorted(literals - set(code_vars) - {config_file}):
        errors.append('%s appears in server code but is not a configuration setting '
                      '(the configuration is read only by server/cfg)' % v)
    if config_file not in doc:
        errors.append('%s is not documented' % config_file)
    for v in doc_vars:
        if v not in code_vars:
            errors.append('%s is documented but the code does not read it' % v)
    if len(set(doc_vars)) != len(doc_vars):
        errors.append('a variable is documented twice')
    if not errors and doc_vars != code_vars:
        errors.append('the documented order differs from the --check-config order')
    for (env, key, default), row in zip(table, rows):
        if row[0] != env:
            continue
        if row[1] != key:
            errors.append('%s: documented JSON key %s, code has %s' % (env, row[1], key))
        if row[2] != default:
            errors.append('%s: documented default "%s", code has "%s"' % (env, row[2], default))

    # the --check-config lines follow the same order
    p = subprocess.run([exe], env={'TRSTCTL_POSTGRES_DSN': 'host=/tmp'},
                       stdout=subprocess.PIPE, universal_newlines=True)
    keys = [line.split(': ', 1)[0].rstrip(':') for line in p.stdout.splitlines()]
    if keys != [t[1] for t in table]:
        errors.append('--check-config keys do not follow the settings table')

    for e in errors:
        print('FAIL: %s' % e)
    print('%d settings documented, %d literals checked' % (len(rows), len(literals)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
