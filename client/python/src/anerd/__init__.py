"""anerd: the Python client of the anerd daemon (the anerd.v1 gRPC API).

    import anerd
    with anerd.connect() as client:          # $ANERD_HOST or the per-user socket
        kernel = client.compile_kernel(mil_text, {"weights/w.bin": blob}).kernel
        outputs, timing = client.eval_kernel(kernel.id, {"x": x})   # numpy in and out

Errors are anerd.AnerdError subclasses, one per gRPC code (anerd.NotFound, anerd.InvalidArgument,
anerd.Unavailable, ...), with `.code` and the daemon's `.message`. The generated stubs are
anerd.v1.anerd_pb2 and anerd.v1.anerd_pb2_grpc (built at install time from anerd.proto).
"""

try:
    from anerd.v1 import anerd_pb2 as pb  # noqa: F401  (generated when the package is built)
except ImportError as e:  # a source checkout on sys.path instead of a built package
    raise ImportError(
        "anerd: the generated gRPC stubs (anerd.v1.anerd_pb2) are missing (%s): install the "
        "package (pip install ./client/python) or put <build>/client/python/gen, where the "
        "anerd_python_stubs CMake target builds it, on PYTHONPATH" % e) from None

from anerd.client import Client, connect, default_target
from anerd.errors import (
    Aborted, AlreadyExists, AnerdError, Cancelled, DataLoss, DeadlineExceeded, FailedPrecondition,
    Internal, InvalidArgument, NotFound, OutOfRange, PermissionDenied, ResourceExhausted,
    Unauthenticated, Unavailable, Unimplemented, Unknown)
from anerd.tensors import DTYPES, numpy_to_tensor, tensor_to_numpy

__version__ = "0.1.0"

__all__ = [
    "Aborted", "AlreadyExists", "AnerdError", "Cancelled", "Client", "DTYPES", "DataLoss",
    "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "NotFound",
    "OutOfRange", "PermissionDenied", "ResourceExhausted", "Unauthenticated", "Unavailable",
    "Unimplemented", "Unknown", "connect", "default_target", "numpy_to_tensor", "pb",
    "tensor_to_numpy",
]
