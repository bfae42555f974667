#!/usr/bin/python3
"""The Python client's driver of the conformance script (conformance.py): the installed
`trstctl` package (trstctl.connect and the generated trstctl.v1 stubs), run by the python
of a virtual environment the wheel was installed into. Reads one step per line on stdin,
{"method": "/trstctl.v1.CA/CreateOwner", "request": {...proto3 JSON...}}, and writes one
line per step: {"code": "OK", "message": "...", "reply": {...proto3 JSON...}}.

  conformance_python.py --addr HOST:PORT --ca-file FILE --token-file FILE
"""

import argparse
import json
import sys

import grpc
from google.protobuf import json_format

import trstctl
from trstctl.v1 import audit_pb2, ca_pb2, guard_pb2, policy_pb2, secrets_pb2

MODULES = {'CA': ca_pb2, 'Secrets': secrets_pb2, 'Audit': audit_pb2, 'Policy': policy_pb2,
           'Guard': guard_pb2}


def to_dict(msg):
    try:
        return json_format.MessageToDict(msg, including_default_value_fields=True)
    except TypeError:  # protobuf >= 26 renamed the option
        return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)


def run(channel, step):
    service, method = step['method'].rsplit('/', 1)
    svc = service.lstrip('/').split('.')[-1]
    module = MODULES[svc]
    md = module.DESCRIPTOR.services_by_name[svc].methods_by_name[method]
    req_cls = getattr(module, md.input_type.name)
    resp_cls = getattr(module, md.output_type.name)
    req = json_format.ParseDict(step['request'], req_cls())
    call = channel.unary_unary(step['method'], request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)
    try:
        reply = call(req, timeout=30)
    except grpc.RpcError as e:
        return {'code': e.code().name, 'message': e.details() or '', 'reply': None}
    return {'code': 'OK', 'message': '', 'reply': to_dict(reply)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--addr', required=True)
    ap.add_argument('--ca-file', required=True)
    ap.add_argument('--token-file', required=True)
    args = ap.parse_args()
    channel = trstctl.connect(args.addr, token_file=args.token_file, ca_file=args.ca_file)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(channel, json.loads(line))), flush=True)
    channel.close()


if __name__ == '__main__':
    main()
