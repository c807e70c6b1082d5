"""Compatibility module: the Python client is now the `anerd` package (client/python/src/anerd).

New code should `import anerd` (pip install ./client/python, see README "Python"): its calls raise
typed anerd.AnerdError subclasses. This module keeps the old surface for existing scripts, with
PYTHONPATH=<build>/client/python/gen:client/python (the anerd_python_stubs CMake target stages the
package there): connect() returns a Client whose calls raise grpc.RpcError as they always did.
"""

import anerd
from anerd.client import default_target, open_channel
from anerd.tensors import DTYPES, tensor_to_numpy

__all__ = ["Client", "DTYPES", "connect", "default_target", "tensor_to_numpy"]


class Client(anerd.Client):
    """anerd.Client with the raw stub: calls raise grpc.RpcError (use e.code(), e.details())."""

    def __init__(self, channel, token=None, timeout=30.0, target=None):
        super().__init__(channel, token=token, timeout=timeout, target=target, typed_errors=False)


def connect(target=None, token=None, tls_ca=None, timeout=30.0, tls_cert=None, tls_key=None):
    """As anerd.connect, returning the compatibility Client (grpc.RpcError on failures)."""
    channel, target = open_channel(target, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    return Client(channel, token=token, timeout=timeout, target=target)
