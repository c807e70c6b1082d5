"""The generated AnerdStub with every grpc.RpcError raised as a typed anerd error.

Every method of the Anerd service is wrapped, so a method added to the proto is covered without
touching this file; server-streaming calls return an iterator that translates errors raised while
iterating and cancels the call when the caller stops early.
"""

import grpc

from anerd import errors
from anerd.v1 import anerd_pb2 as pb
from anerd.v1 import anerd_pb2_grpc as pb_grpc


class TypedStub:
    def __init__(self, channel, target=None):
        stub = pb_grpc.AnerdStub(channel)
        for method in pb.DESCRIPTOR.services_by_name["Anerd"].methods:
            call = getattr(stub, method.name)
            wrap = _streaming if method.server_streaming else _unary
            setattr(self, method.name, wrap(call, target))


def _unary(call, target):
    def invoke(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, target) from None
    return invoke


def _streaming(call, target):
    def invoke(*args, **kwargs):
        try:
            responses = call(*args, **kwargs)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, target) from None
        return _translated(responses, target)
    return invoke


def _translated(responses, target):
    try:
        for response in responses:
            yield response
    except grpc.RpcError as e:
        raise errors.from_rpc_error(e, target) from None
    finally:
        responses.cancel()  # a no-op when the stream ended; frees the call when the caller stopped
