#!/usr/bin/env python3
"""A customer-style evaluation harness for tests: scores a PEFT candidate directory with the
synthetic utility (negative RMS distance to an optimum safetensors file, F32 tensors), and
misbehaves on purpose on every third call after the first three: exit status 3, garbage on
stdout, or a hang (the agent's time-out must stop it).

usage: eval_synthetic.py OPTIMUM.safetensors CANDIDATE_DIR
"""
import json
import math
import os
import struct
import sys
import time


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    values = []
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__"]
    tensors.sort(key=lambda kv: kv[1]["data_offsets"][0])
    for _, t in tensors:
        assert t["dtype"] == "F32", t["dtype"]
        start, end = t["data_offsets"]
        values.extend(struct.unpack("<%df" % ((end - start) // 4), data[start:end]))
    return values


def main():
    optimum = load(sys.argv[1])
    candidate = load(os.path.join(sys.argv[2], "adapter_model.safetensors"))
    counter = os.path.join(sys.argv[2], "..", "calls")
    calls = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(calls + 1))
    print("loading candidate from", sys.argv[2])  # harnesses log; the last line counts
    if calls >= 3 and calls % 3 == 0:
        mode = (calls // 3) % 3
        if mode == 0:
            print("CUDA out of memory", file=sys.stderr)
            sys.exit(3)
        if mode == 1:
            print("accuracy: 0.73")
            return
        time.sleep(60)
    rms = math.sqrt(sum((a - b) ** 2 for a, b in zip(candidate, optimum)) / len(optimum))
    print(json.dumps({"scores": {"neg_rms_distance": -rms}}))


if __name__ == "__main__":
    main()
