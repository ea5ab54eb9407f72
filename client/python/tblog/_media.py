"""Client-side shaping for add_video, add_mesh and add_embedding(label_img=):
only numpy reshapes, so the daemon gets the layouts tblog.v1 defines (the
daemon encodes the GIF, the mesh tensors and the sprite)."""

import json

import numpy as np

from tblog import _convert


def video_frames(vid_tensor):
    """PyTorch's [N, T, C, H, W] batch of clips as one clip [T, H', W', C]:
    the batch padded with black clips to a power of two and tiled into a
    grid of 2**floor(log2(N)/2) rows, as torch's _prepare_video tiles it.
    The element type is kept (uint8 stays exact; float is read in [0, 1])."""
    array = _convert.to_numpy(vid_tensor)
    if array.ndim != 5:
        raise ValueError(f"add_video: vid_tensor must be [N, T, C, H, W], got shape {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.float32, np.float64):
        array = array.astype(np.float32)
    b, t, c, h, w = array.shape
    if c not in (1, 3, 4):
        raise ValueError(f"add_video: {c} channels; expected 1, 3 or 4")
    padded = 1 << (b - 1).bit_length() if b > 0 else 1
    if padded != b:
        array = np.concatenate([array, np.zeros((padded - b, t, c, h, w), array.dtype)], axis=0)
    rows = 2 ** ((b.bit_length() - 1) // 2)
    cols = padded // rows
    array = array.reshape(rows, cols, t, c, h, w).transpose(2, 0, 4, 1, 5, 3)
    return np.ascontiguousarray(array.reshape(t, rows * h, cols * w, c))


def mesh_json(config_dict):
    """torch's _get_json_config: json.dumps(config_dict, sort_keys=True), or "{}"."""
    return "{}" if config_dict is None else json.dumps(config_dict, sort_keys=True)


def mesh_tensor(name, value):
    """A mesh component as a numeric [B, N, 3] array (None stays None)."""
    if value is None:
        return None
    array = _convert.to_numpy(value)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"add_mesh: {name} must be [B, N, 3], got shape {array.shape}")
    return array


def sprite_images(label_img, points):
    """label_img as PyTorch takes it, [N, C, H, W] with one image per point."""
    array = _convert.to_numpy(label_img)
    if array.ndim != 4 or array.shape[0] != points:
        raise ValueError(f"add_embedding: label_img must be [N, C, H, W] with N = {points}, "
                         f"got shape {array.shape}")
    if array.shape[1] not in (1, 2, 3, 4):
        raise ValueError(f"add_embedding: label_img has {array.shape[1]} channels; expected 1-4")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    return array
