#!/usr/bin/env python3
"""Writes the small broken safetensors and JSONL files under tests/broken/.

Each file breaks exactly one rule of docs/formats.md; tests/test_safetensors.c
and tests/test_jsonl.c check that opening it fails with a one-line error naming
the file and the problem. Plain Python (no torch): run as
    /usr/bin/python3 tests/make_broken_inputs.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "broken")


def st_bytes(header, data=b"", header_len=None, pad=True):
    """A safetensors file: u64 LE header length, JSON header, data.
    `header` may be a dict (serialised) or raw bytes (for invalid JSON)."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def write(name, blob):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)


def safetensors_cases():
    t4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    good_data = f32(1, 2, 3, 4)
    # Fewer than the 8 bytes of the length prefix.
    write("st_truncated_header.safetensors", b"\x10\x00\x00\x00\x00")
    # The length prefix promises more header than the file holds.
    write("st_header_past_eof.safetensors", st_bytes({"a": t4}, good_data, header_len=4096))
    # JSON syntax error inside the header.
    write("st_invalid_json.safetensors", st_bytes(b'{"a": {"dtype": "F32", "shape": [4],, "data_offsets": [0, 16]}}', good_data))
    # Valid JSON, but not an object.
    write("st_header_not_object.safetensors", st_bytes(b"[1, 2, 3]"))
    # An entry without data_offsets.
    write("st_missing_offsets.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [4]}}, good_data))
    # Offsets pointing far past the end of the file.
    write("st_offsets_past_eof.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [4096, 4112]}}, good_data))
    # Two tensors sharing bytes 8..16.
    write("st_overlap.safetensors", st_bytes({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }, f32(*range(6))))
    # Bytes of the data section that no tensor covers (HF rejects these too).
    write("st_gap.safetensors", st_bytes({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
    }, f32(*range(6))))
    # Shape [2, 3] F32 needs 24 bytes, offsets span 16.
    write("st_shape_mismatch.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}, good_data))
    # Not a safetensors dtype at all.
    write("st_unknown_dtype.safetensors",
          st_bytes({"a": {"dtype": "Q4_K", "shape": [4], "data_offsets": [0, 16]}}, good_data))
    # A real safetensors dtype this runtime does not support.
    write("st_unsupported_dtype.safetensors",
          st_bytes({"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, good_data))
    write("st_negative_dim.safetensors",
          st_bytes({"a": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}, good_data))
    # A valid header for 2 tensors, the file cut in the middle of the second.
    write("st_truncated_data.safetensors", st_bytes({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]},
    }, f32(1, 2, 3, 4, 5, 6)))
    # Zero bytes.
    write("st_empty.safetensors", b"")
    # __metadata__ values must be strings.
    write("st_bad_metadata.safetensors", st_bytes({"__metadata__": {"step": 3}, "a": t4}, good_data))
    # The same tensor name twice (a JSON object with a duplicate key).
    write("st_duplicate_name.safetensors", st_bytes(
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
        good_data))


def jsonl_cases():
    good = {"problem": "What is 1+1?", "answer": "2"}
    lines = [json.dumps(good), json.dumps({"problem": "2*3?", "answer": "6"})]
    with open(os.path.join(OUT, "jsonl_invalid_json.jsonl"), "w") as f:
        f.write("\n".join(lines + ['{"problem": "3+4?", "answer": 7,}', json.dumps(good)]) + "\n")
    with open(os.path.join(OUT, "jsonl_not_object.jsonl"), "w") as f:
        f.write("\n".join([json.dumps(good), "[1, 2, 3]", json.dumps(good)]) + "\n")
    with open(os.path.join(OUT, "jsonl_missing_field.jsonl"), "w") as f:
        f.write("\n".join([json.dumps(good), "", json.dumps({"problem": "no answer here"})]) + "\n")
    with open(os.path.join(OUT, "jsonl_wrong_type.jsonl"), "w") as f:
        f.write("\n".join([json.dumps(good), json.dumps({"problem": 12, "answer": "3"})]) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    safetensors_cases()
    jsonl_cases()


if __name__ == "__main__":
    main()
