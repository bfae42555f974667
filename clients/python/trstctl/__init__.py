"""trstctl: the Python client of the trstctl gRPC API.

The stubs are generated from the server's protos when the wheel is built:

    from trstctl.v1 import ca_pb2, ca_pb2_grpc      # also secrets, audit, policy, guard, assist
    from trstctl.health.v1 import health_pb2, health_pb2_grpc    # grpc.health.v1

connect() returns a grpc.Channel that sends the bearer token with every call
(`authorization: Bearer <token>`, as gRPC call credentials) and verifies the server
against a CA bundle:

    channel = trstctl.connect('trstctl.internal:8443', token_file='token',
                              ca_file='ca.pem')
    owner = ca_pb2_grpc.CAStub(channel).CreateOwner(
        ca_pb2.CreateOwnerRequest(kind='workload', name='payments'))

The token never travels in the clear: plaintext=True is allowed only to a loopback
address (gRPC's local credentials, which also refuse a peer that is not loopback), for a
server whose TLS is disabled, which trstctl allows only on loopback.
"""

import ipaddress
from typing import Optional, Sequence, Tuple

import grpc

__all__ = ['connect', 'read_token']


def read_token(path: str) -> str:
    """The token in a file (one line, as the server writes its bootstrap token), without
    surrounding white space. Raises ValueError for an empty file, OSError when unreadable.
    """
    with open(path, encoding='utf-8') as f:
        token = f.read().strip()
    if not token:
        raise ValueError('%s: empty token file' % path)
    return token


def _read(path: str, what: str) -> bytes:
    with open(path, 'rb') as f:
        data = f.read()
    if b'-----BEGIN ' not in data:
        raise ValueError('%s %s: no PEM block in it' % (what, path))
    return data


def _host(addr: str) -> str:
    """The host part of a "host:port" target ("[::1]:8443" -> "::1")."""
    if addr.startswith('dns:///'):
        addr = addr[len('dns:///'):]
    if addr.startswith('['):
        return addr[1:addr.find(']')] if ']' in addr else addr
    return addr.rsplit(':', 1)[0] if addr.count(':') == 1 else addr


def _is_loopback(addr: str) -> bool:
    host = _host(addr)
    if host.lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(addr: str, token: Optional[str] = None, *, token_file: Optional[str] = None,
            ca_file: Optional[str] = None, server_name: Optional[str] = None,
            cert_file: Optional[str] = None, key_file: Optional[str] = None,
            plaintext: bool = False,
            options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to the trstctl server at addr ("host:port").

    token or token_file: the bearer token sent with every call (none: only health and
    reflection answer). ca_file: PEM roots that verify the server's certificate (for the
    server's internal TLS mode, its ca-bundle.pem or the GetCABundle reply); None uses the system roots.
    server_name: the name verified in the certificate instead of the host of addr.
    cert_file and key_file: a client certificate for mTLS, both or neither.
    plaintext: no TLS, only to localhost, 127.0.0.0/8 or ::1; takes no TLS argument.
    options: extra grpc channel options.

    Raises ValueError for a contradictory or malformed argument and OSError for an
    unreadable file; the channel itself connects on the first call, so an unreachable or
    unverifiable server shows up as UNAVAILABLE then. Close it with channel.close().
    """
    if not addr:
        raise ValueError('addr: empty')
    if token is not None and token_file is not None:
        raise ValueError('token and token_file: give one')
    if token_file is not None:
        token = read_token(token_file)
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise ValueError('token: empty or contains white space')
    if (cert_file is None) != (key_file is None):
        raise ValueError('cert_file and key_file go together')
    options = list(options)
    if plaintext:
        if ca_file or server_name or cert_file:
            raise ValueError('plaintext takes no TLS argument (ca_file, server_name, '
                             'cert_file, key_file)')
        if not _is_loopback(addr):
            raise ValueError('plaintext only to a loopback address, not %s: the bearer '
                             'token would travel in the clear' % addr)
        creds = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file, 'ca_file') if ca_file else None,
            private_key=_read(key_file, 'key_file') if key_file else None,
            certificate_chain=_read(cert_file, 'cert_file') if cert_file else None)
        if server_name:
            options.append(('grpc.ssl_target_name_override', server_name))
    if token is not None:
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(addr, creds, options=options)
