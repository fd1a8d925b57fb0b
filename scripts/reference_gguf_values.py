#!/usr/bin/env python3
"""Reference values of a few SmolLM2 GGUF tensors, dequantized by the `gguf` Python package.

Usage: pip install gguf numpy; python3 scripts/reference_gguf_values.py [model.gguf]
Prints C++ initializers pasted into tests/io/test_gguf_smollm2.cpp. Arrays from gguf are
[ne1, ne0] (row-major, Hugging Face orientation) in the file's row order; for attn_q/attn_k the
script also undoes llama.cpp's Q/K row permutation with numpy so the test can check load().
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

path = sys.argv[1] if len(sys.argv) > 1 else "data/SmolLM2-135M-Instruct.Q4_1.gguf"
reader = GGUFReader(path)
tensors = {t.name: t for t in reader.tensors}


def array(name):
    t = tensors[name]
    a = dequantize(t.data, t.tensor_type).astype(np.float32)
    return a.reshape([int(d) for d in reversed(t.shape)]) if a.ndim > 2 else a, t.tensor_type.name


def hf_unpermute(w, n_head):
    # The converter wrote rows (h, p, i) at (h, i, p); go back.
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def emit(gguf_name, a, type_name, rows, hf_name=None):
    a2 = a.reshape(-1, a.shape[-1])
    print(f"// {gguf_name} ({type_name}) shape {list(a.shape)}")
    print(f'{{"{gguf_name}", "{hf_name or ""}", {len(a2)}, {a2.shape[1]}, '
          f"{float(a2[0, 0])!r}, {float(a2[-1, -1])!r}, {{")
    for r in rows:
        row = a2[r].astype(np.float64)
        print(f"    {{{r}, {float(row.sum())!r}, {float(np.abs(row).sum())!r}}},")
    print("}},")


a, ty = array("token_embd.weight")
emit("token_embd.weight", a, ty, [0, 1, 1000, 49151], "model.embed_tokens.weight")
a, ty = array("blk.0.ffn_down.weight")
emit("blk.0.ffn_down.weight", a, ty, [0, 300, 575], "model.layers.0.mlp.down_proj.weight")
a, ty = array("blk.7.attn_v.weight")
emit("blk.7.attn_v.weight", a, ty, [0, 100, 191], "model.layers.7.self_attn.v_proj.weight")
a, ty = array("blk.29.ffn_gate.weight")
emit("blk.29.ffn_gate.weight", a, ty, [0, 1535], "model.layers.29.mlp.gate_proj.weight")
a, ty = array("output_norm.weight")
emit("output_norm.weight", a.reshape(1, -1), ty, [0], "model.norm.weight")
a, ty = array("blk.3.attn_norm.weight")
emit("blk.3.attn_norm.weight", a.reshape(1, -1), ty, [0], "model.layers.3.input_layernorm.weight")
print("// Q/K after undoing the converter permutation (Hugging Face row order)")
a, ty = array("blk.2.attn_q.weight")
emit("blk.2.attn_q.weight", hf_unpermute(a, 9), ty, [0, 1, 32, 63, 575],
     "model.layers.2.self_attn.q_proj.weight")
a, ty = array("blk.2.attn_k.weight")
emit("blk.2.attn_k.weight", hf_unpermute(a, 3), ty, [0, 1, 32, 191],
     "model.layers.2.self_attn.k_proj.weight")
