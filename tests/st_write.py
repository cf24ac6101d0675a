"""Writes safetensors files by hand (the Python `safetensors` package is not a
Debian package): u64 little-endian header length, a compact JSON header padded
with spaces so the data starts 8-byte aligned, then the raw little-endian data
of each tensor in order. Shared by the tests/gen_*.py reference scripts."""
import json
import os
import struct

import torch

_DTYPES = {
    torch.float32: ("F32", torch.float32),
    torch.float64: ("F32", torch.float32),
    torch.int32: ("I32", torch.int32),
    torch.int64: ("I32", torch.int32),
    torch.uint8: ("U8", torch.uint8),
}


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: torch tensor}; metadata: {str: str} or None."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        code, store = _DTYPES[t.dtype]
        arr = t.to(store).numpy()
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return 8 + len(h) + off
