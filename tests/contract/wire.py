"""What the contract test needs besides the tests: stubs generated from proto/ at test
time, a wxp-server process in plaintext loopback mode, and a tiny safetensors writer.

Nothing here imports WXP code: the point is an independent client that knows only the
.proto files and the documented wire format.
"""

import hashlib
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import grpc


def generate_stubs(proto_root, out_dir):
    """Runs protoc with grpc_python_plugin over proto/*.proto; returns (pb2, pb2_grpc)."""
    os.makedirs(out_dir, exist_ok=True)
    protos = ["proto/swarm_spec.proto", "proto/wxp.proto"]
    subprocess.run(
        ["protoc", "--proto_path=" + proto_root, "--python_out=" + out_dir,
         "--grpc_out=" + out_dir, "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"]
        + protos, check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return (importlib.import_module("proto.wxp_pb2"),
            importlib.import_module("proto.wxp_pb2_grpc"))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def safetensors(tensors, metadata=None):
    """Bytes of a safetensors file: [(name, dtype, shape, values)], dtype "F32" or "F64"."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, values in tensors:
        fmt = {"F32": "f", "F64": "d"}[dtype]
        raw = struct.pack("<%d%s" % (len(values), fmt), *values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


# The schema every test adapter has: two LoRA factors, 8 + 8 parameters.
SCHEMA = [("m.lora_A.weight", "F32", (2, 4)), ("m.lora_B.weight", "F32", (4, 2))]


def adapter(value, schema=SCHEMA):
    """An adapter of `schema` whose every parameter is `value` (varying per index)."""
    tensors = []
    for name, dtype, shape in schema:
        n = 1
        for d in shape:
            n *= d
        tensors.append((name, dtype, shape, [value + 0.001 * i for i in range(n)]))
    return safetensors(tensors)


class Server:
    """A wxp-server in plaintext loopback mode on a free port, with a temporary data dir."""

    def __init__(self, binary, workdir, config_text=""):
        self.dir = tempfile.mkdtemp(dir=workdir)
        self.data_dir = os.path.join(self.dir, "data")
        port_file = os.path.join(self.dir, "port")
        args = [binary, "--plaintext", "--listen=127.0.0.1:0", "--data_dir=" + self.data_dir,
                "--port_file=" + port_file]
        if config_text:
            config = os.path.join(self.dir, "server.textproto")
            with open(config, "w") as f:
                f.write(config_text)
            args.append("--config=" + config)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                # A server still starting would outlive the test that gave up on it.
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("wxp-server did not start; log: " + self.log_text())
            time.sleep(0.05)  # waiting for another process: there is no event to wait on
        with open(port_file) as f:
            self.address = "127.0.0.1:" + f.read().strip()

    def channel(self, distinct=None):
        """A new channel; `distinct` forces a separate connection."""
        options = [("grpc.max_receive_message_length", 16 << 20),
                   ("grpc.max_send_message_length", 16 << 20)]
        if distinct is not None:
            options.append(("wxp.contract.connection", distinct))
        return grpc.insecure_channel(self.address, options=options)

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_safetensors(data):
    """The tensors of safetensors bytes: {name: (dtype, shape, values)} (F32 / F64 only)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        fmt = {"F32": "f", "F64": "d"}[entry["dtype"]]
        count = (end - begin) // struct.calcsize(fmt)
        out[name] = (entry["dtype"], tuple(entry["shape"]),
                     list(struct.unpack("<%d%s" % (count, fmt), body[begin:end])))
    return out


def alpha_blob(alpha):
    """The canonical blob of a coefficient vector as ReportRequest.position_alpha documents
    it: one F32 tensor "alpha" of shape [len(alpha)], no metadata."""
    return safetensors([("alpha", "F32", (len(alpha),), list(alpha))])


def f32(x):
    """x rounded to float32, as a repeated float field carries it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def lora_expert(rank, fill, module="base_model.model.m", in_features=4, out_features=3):
    """A PEFT LoRA expert of one module: (safetensors bytes, A rows [r][in], B rows
    [out][r]), every value distinct and float32-exact."""
    a = [[f32(fill + 0.01 * (i * in_features + k)) for k in range(in_features)]
         for i in range(rank)]
    b = [[f32(fill - 0.02 * (o * rank + i)) for i in range(rank)] for o in range(out_features)]
    data = safetensors([
        (module + ".lora_A.weight", "F32", (rank, in_features), [x for row in a for x in row]),
        (module + ".lora_B.weight", "F32", (out_features, rank), [x for row in b for x in row])])
    return data, a, b


def lora_modules(rank, fill, modules, in_features=4, out_features=3):
    """A PEFT LoRA expert of several modules (base_model.model.<module>), all of `rank`."""
    tensors = []
    for n, module in enumerate(modules):
        data, a, b = lora_expert(rank, fill + n, "base_model.model." + module, in_features,
                                 out_features)
        tensors.extend(read_safetensors(data).items())
    return safetensors([(name, dtype, shape, values)
                        for name, (dtype, shape, values) in tensors])


def matmul(b, a):
    """B [out][r] times A [r][in]."""
    return [[sum(b[o][i] * a[i][k] for i in range(len(a))) for k in range(len(a[0]))]
            for o in range(len(b))]
