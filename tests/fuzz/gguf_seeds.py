#!/usr/bin/env python3
"""Seed GGUF files for fuzz_gguf, cut from a real GGUF model (SmolLM2 by default).

  gguf_seeds.py MODEL.gguf OUT_DIR

Writes OUT_DIR/smollm2-cut.gguf: the model's own metadata with the tokenizer cut to its first
tokens (and the merges among them), the dimensions shrunk to a 1-layer model, and each tensor of
that layer in the model's own type, filled with the first bytes of the real tensor (real quantized
blocks). And OUT_DIR/types.gguf: one small tensor of every block type the reader knows.
Standard library only.
"""
import struct
import sys
from pathlib import Path

# ggml type -> (elements per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
          14: (256, 210), 15: (256, 292), 30: (1, 2)}
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.d, self.p)
        self.p += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s

    def value(self, t):
        if t == STRING:
            return self.string()
        if t == ARRAY:
            et, n = self.take("I"), self.take("Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR[t])


def encode_value(t, v):
    if t == STRING:
        return struct.pack("<Q", len(v)) + v
    if t == ARRAY:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(encode_value(et, x) for x in items)
    return struct.pack("<" + SCALAR[t], v)


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ne, type, bytes)]."""
    out = bytearray(struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kvs)))
    for key, t, v in kvs:
        out += encode_value(STRING, key.encode()) + struct.pack("<I", t) + encode_value(t, v)
    offset = 0
    for name, ne, t, data in tensors:
        out += encode_value(STRING, name.encode()) + struct.pack("<I", len(ne))
        out += struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", t, offset)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    Path(path).write_bytes(bytes(out))


def nbytes(ne, t):
    count = 1
    for n in ne:
        count *= n
    per, size = BLOCKS[t]
    return count // per * size


def main(model, out_dir):
    data = Path(model).read_bytes()
    r = Reader(data)
    magic, version, n_tensors, n_kv = r.take("I"), r.take("I"), r.take("Q"), r.take("Q")
    assert magic == 0x46554747, "not a GGUF file"
    kvs = []
    for _ in range(n_kv):
        key = r.string().decode()
        t = r.take("I")
        kvs.append((key, t, r.value(t)))
    infos = {}
    for _ in range(n_tensors):
        name = r.string().decode()
        ne = [r.take("Q") for _ in range(r.take("I"))]
        t, off = r.take("I"), r.take("Q")
        infos[name] = (ne, t, off)
    meta = {k: (t, v) for k, t, v in kvs}
    alignment = meta.get("general.alignment", (4, 32))[1]
    data_start = (r.p + alignment - 1) // alignment * alignment

    arch = meta["general.architecture"][1].decode()
    vocab, hidden, ffn, heads, kv_heads = 512, 64, 128, 4, 2
    tokens = meta["tokenizer.ggml.tokens"][1][1][:vocab]
    kept = set(tokens)
    shrink = {f"{arch}.block_count": 1, f"{arch}.embedding_length": hidden,
              f"{arch}.feed_forward_length": ffn, f"{arch}.attention.head_count": heads,
              f"{arch}.attention.head_count_kv": kv_heads, f"{arch}.rope.dimension_count": hidden // heads,
              f"{arch}.vocab_size": vocab}
    cut = []
    for key, t, v in kvs:
        if key in shrink:
            v = shrink[key]
        elif key.startswith("tokenizer.ggml.") and t == ARRAY:
            et, items = v
            if key == "tokenizer.ggml.merges":
                items = [m for m in items
                         if all(p in kept for p in m.split(b" ")) and m.replace(b" ", b"") in kept]
            elif len(items) >= vocab:
                items = items[:vocab]
            v = (et, items)
        elif key.startswith("tokenizer.ggml.") and key.endswith("_token_id") and v >= vocab:
            v = vocab - 1
        elif key == "tokenizer.chat_template":
            continue  # long, and no reader looks at it
        cut.append((key, t, v))

    kv_dim = hidden // heads * kv_heads
    shapes = {"token_embd.weight": [hidden, vocab], "output_norm.weight": [hidden],
              "blk.0.attn_norm.weight": [hidden], "blk.0.ffn_norm.weight": [hidden],
              "blk.0.attn_q.weight": [hidden, hidden], "blk.0.attn_k.weight": [hidden, kv_dim],
              "blk.0.attn_v.weight": [hidden, kv_dim], "blk.0.attn_output.weight": [hidden, hidden],
              "blk.0.ffn_gate.weight": [hidden, ffn], "blk.0.ffn_up.weight": [hidden, ffn],
              "blk.0.ffn_down.weight": [ffn, hidden]}
    tensors = []
    for name, ne in shapes.items():
        _, t, off = infos[name]
        n = nbytes(ne, t)
        tensors.append((name, ne, t, data[data_start + off:data_start + off + n]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_gguf(out / "smollm2-cut.gguf", cut, tensors, alignment)

    # One tensor per block type, 2 rows of 256 values, bytes from the real file's data section.
    pool = data[data_start:]
    typed, pos = [], 0
    for t in sorted(BLOCKS):
        n = nbytes([256, 2], t)
        typed.append((f"t{t}", [256, 2], t, pool[pos:pos + n]))
        pos += n
    write_gguf(out / "types.gguf", [("general.architecture", STRING, b"llama")], typed)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
