#!/usr/bin/env python3
"""Writes and checks the safetensors interop fixture of tests/engine/test_safetensors.cpp.

The fixture is written by Hugging Face's own safetensors library (safetensors.numpy), so the
C++ test proves that rlft reads what the reference writes; `--check` proves the other
direction: that the reference reads what rlft writes.

Setup (numpy and safetensors only; torch is not needed):
    python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install safetensors numpy

Regenerate tests/data/safetensors/python_fixture.safetensors:
    /tmp/st-venv/bin/python scripts/make_safetensors_fixtures.py

Check a file written by rlft's safetensors::save (the C++ test
SafetensorsInterop.WritesFileForPython writes it and prints its path):
    /tmp/st-venv/bin/python scripts/make_safetensors_fixtures.py \
        --check /tmp/rlft_interop.safetensors
Run with safetensors 0.8.0 and numpy 2.4.6: "OK: ... 8 tensors and metadata match".
(The reference orders __metadata__ keys by a hash map, so regenerating may reorder them.)
"""
import argparse
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "data", "safetensors", "python_fixture.safetensors")

# The same values are spelled out in test_safetensors.cpp (kFixture* constants); change both.
METADATA = {"format": "np", "note": "rlft fixture \u00e9\u2713"}


def expected_tensors():
    return {
        # Multi-dim F32 with extremes: the largest float, the smallest denormal, -0.
        "f32_matrix": np.array([[0.0, 1.5, -2.25], [3.4028235e38, 1e-45, -0.0]], np.float32),
        # An empty tensor: a shape with a 0 and no bytes in the buffer.
        "f32_empty": np.zeros((0, 3), np.float32),
        # A 0-d (scalar) tensor.
        "f64_scalar": np.array(3.141592653589793, np.float64),
        # NaN, +-Inf and the smallest double, compared bit for bit.
        "f64_special": np.array([np.nan, np.inf, -np.inf, 5e-324], np.float64),
        "f16_vector": np.array([1.0, -2.0, 65504.0, 2.0**-14], np.float16),
        "i64_extremes": np.array([-(2**63), -1, 0, 2**63 - 1], np.int64),
        "u8_cube": np.array([[[0, 1], [2, 3]], [[4, 5], [254, 255]]], np.uint8),
        "bool_mask": np.array([True, False, True, True, False], np.bool_),
    }


def check(path):
    loaded = load_file(path)
    want = expected_tensors()
    assert sorted(loaded) == sorted(want), f"names differ: {sorted(loaded)} vs {sorted(want)}"
    for name, w in want.items():
        got = loaded[name]
        assert got.dtype == w.dtype, f"{name}: dtype {got.dtype} vs {w.dtype}"
        assert got.shape == w.shape, f"{name}: shape {got.shape} vs {w.shape}"
        assert got.tobytes() == w.tobytes(), f"{name}: values {got} vs {w}"
    with safe_open(path, framework="np") as f:
        assert f.metadata() == METADATA, f"metadata {f.metadata()} vs {METADATA}"
    print(f"OK: {path}: {len(want)} tensors and metadata match")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="FILE", help="check a file written by rlft instead")
    args = parser.parse_args()
    if args.check:
        check(args.check)
        return
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    save_file(expected_tensors(), FIXTURE, metadata=METADATA)
    os.chmod(FIXTURE, 0o644)  # the reference writes through a 0600 temporary file
    check(FIXTURE)


if __name__ == "__main__":
    sys.exit(main())
