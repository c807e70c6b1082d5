"""numpy arrays <-> anerd Tensor messages (raw little-endian elements, C order)."""

import numpy as np

from anerd.v1 import anerd_pb2 as pb

# anerd tensor dtype names -> numpy dtypes.
DTYPES = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def numpy_dtype(dtype):
    """The little-endian numpy dtype of an anerd dtype name; ValueError naming the accepted ones."""
    if dtype not in DTYPES:
        raise ValueError("unknown anerd dtype %r (one of %s)" % (dtype, ", ".join(DTYPES)))
    return np.dtype(DTYPES[dtype]).newbyteorder("<")


def numpy_to_tensor(name, array, dtype="fp16"):
    """A Tensor message named `name` holding `array` converted to the anerd dtype `dtype`."""
    data = np.ascontiguousarray(array, dtype=numpy_dtype(dtype))
    return pb.Tensor(name=name, dtype=dtype, shape=list(data.shape), data=data.tobytes())


def tensor_to_numpy(tensor):
    """An anerd Tensor message as a numpy array of its dtype and shape (a read-only view of the
    message's bytes; copy it to modify)."""
    dtype = numpy_dtype(tensor.dtype)
    return np.frombuffer(tensor.data, dtype=dtype).reshape(list(tensor.shape))
