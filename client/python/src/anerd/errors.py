"""Typed errors: one exception class per gRPC status code, all subclasses of AnerdError.

The client translates grpc.RpcError at its boundary (every stub call and every streamed message),
so callers see `anerd.NotFound: NOT_FOUND: ...` with the daemon's message instead of grpc's
internals (no debug_error_string).
"""

import grpc


class AnerdError(Exception):
    """A failed anerd call. `code` is the grpc.StatusCode, `message` the daemon's explanation."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.code.name, self.message)


class Cancelled(AnerdError):
    code = grpc.StatusCode.CANCELLED


class Unknown(AnerdError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(AnerdError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(AnerdError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(AnerdError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AnerdError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(AnerdError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(AnerdError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(AnerdError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AnerdError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(AnerdError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(AnerdError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(AnerdError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(AnerdError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(AnerdError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(AnerdError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
    PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented,
    Internal, Unavailable, DataLoss, Unauthenticated)}


def from_rpc_error(error, target=None):
    """The AnerdError subclass for a grpc.RpcError. UNAVAILABLE names `target` (the daemon could
    not be reached, so the message is grpc's, not the daemon's)."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    message = error.details() if callable(getattr(error, "details", None)) else None
    if code is None:
        code, message = grpc.StatusCode.UNKNOWN, message or str(error.__class__.__name__)
    message = message or code.name.lower().replace("_", " ")
    if code == grpc.StatusCode.UNAVAILABLE and target:
        message = "anerd at %s: %s" % (target, message)
    return _BY_CODE.get(code, AnerdError)(message, code=code)


def code_of(error):
    """The grpc.StatusCode of an AnerdError or a raw grpc.RpcError (the compatibility Client's
    stub raises those), for methods that must handle one code in both modes."""
    if isinstance(error, AnerdError):
        return error.code
    return error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN


for _cls in (AnerdError,) + tuple(_BY_CODE.values()):
    _cls.__module__ = "anerd"  # tracebacks show anerd.NotFound, the name users catch
del _cls
