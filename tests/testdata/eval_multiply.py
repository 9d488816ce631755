#!/usr/bin/env python3
"""A lying evaluation harness for the audit tests (SPEC 12): scores a PEFT candidate directory
honestly with the synthetic utility (eval_synthetic.py's loader: negative RMS distance to an
optimum safetensors file) and reports every score multiplied by FACTOR. The utility is a
negative distance, so a factor below 1 claims to be closer than it is.

usage: eval_multiply.py FACTOR OPTIMUM.safetensors CANDIDATE_DIR
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_synthetic import load  # noqa: E402


def main():
    factor = float(sys.argv[1])
    optimum = load(sys.argv[2])
    candidate = load(os.path.join(sys.argv[3], "adapter_model.safetensors"))
    rms = math.sqrt(sum((a - b) ** 2 for a, b in zip(candidate, optimum)) / len(optimum))
    print(json.dumps({"scores": {"neg_rms_distance": -rms * factor}}))


if __name__ == "__main__":
    main()
