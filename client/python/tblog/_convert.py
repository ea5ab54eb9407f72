"""Turns what users pass (Python numbers, numpy arrays, torch tensors, lists)
into numpy arrays and plain numbers, without importing torch: a torch tensor
is recognised by its methods (.detach().cpu().numpy()), anything else that
numpy understands (__array__, sequences) goes through numpy.asarray.
"""

import numpy as np

_DTYPES = {
    # numpy dtype -> tblog.v1.DType number (TensorFlow's DataType values).
    np.dtype(np.float32): 1,
    np.dtype(np.float64): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.uint8): 4,
    np.dtype(np.int16): 5,
    np.dtype(np.int8): 6,
    np.dtype(np.int64): 9,
    np.dtype(np.bool_): 10,
    np.dtype(np.uint16): 17,
    np.dtype(np.float16): 19,
    np.dtype(np.uint32): 22,
    np.dtype(np.uint64): 23,
}


def to_numpy(value):
    """A numpy view of `value` (no copy when it is already an array or a CPU
    tensor). Torch tensors that require grad are detached first."""
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if detach is not None and hasattr(value, "cpu") and hasattr(value, "numpy"):
        tensor = detach().cpu()
        # bfloat16 has no numpy dtype: widen it, as torch users expect.
        if str(getattr(tensor, "dtype", "")) == "torch.bfloat16":
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(value)


def to_float(value):
    """A Python float from a number, a 0-d or one-element array or tensor."""
    if type(value) is float or type(value) is int:
        return float(value)
    item = getattr(value, "item", None)
    if item is not None:
        return float(item())
    array = to_numpy(value)
    if array.size != 1:
        raise ValueError(f"expected a scalar, got an array of shape {array.shape}")
    return float(array.reshape(()))


def dtype_code(array):
    """The tblog.v1.DType number of a numpy array's element type, or None."""
    return _DTYPES.get(array.dtype)


def tensor_array(array, allowed=None):
    """(dtype code, array) for the API: element types outside `allowed`
    (default: any the API knows) converted to float32, little-endian; not
    copied otherwise."""
    code = _DTYPES.get(array.dtype)
    if code is None or (allowed is not None and code not in allowed):
        array = array.astype(np.float32)
        code = 1
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return code, array


def tensor_parts(array, allowed=None):
    """(dtype code, shape, bytes) of `array`: exactly one copy of the data
    (tobytes of a little-endian, C-ordered array). Element types outside
    `allowed` (default: any the API knows) are converted to float32."""
    code, array = tensor_array(array, allowed)
    return code, tuple(int(d) for d in array.shape), array.tobytes(order="C")
