#!/usr/bin/env python3
"""Independent perplexity reference for a LLaMA GGUF model (numpy, float64).

Independent of the C++ code on purpose: tensors come from the `gguf` package's own
dequantizers, the forward runs in GGUF-native layout (llama.cpp stores q/k rows permuted for
interleaved RoPE, so this script rotates consecutive pairs (x[2i], x[2i+1]) instead of un-permuting
to the Hugging Face rotate-half layout), and the text is tokenized by the Hugging Face `tokenizers`
library built from the GGUF vocabulary and merges.

Protocol (ALGORITHMS.md section 7): tokenize the whole text (one BOS first only when
tokenizer.ggml.add_bos_token is true), cut into non-overlapping windows of seq_len tokens, drop
the tail, predict tokens 1..L-1 of each window, ppl = exp(mean NLL).

    pip install gguf numpy tokenizers
    python3 scripts/reference_perplexity.py --model data/SmolLM2-135M-Instruct.Q4_1.gguf \
        --text data/text/prideprejudice.txt --seq-len 256 --windows 4
"""
import argparse
import json
import math

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def build_tokenizer(reader):
    pre = field(reader, "tokenizer.ggml.pre")
    if field(reader, "tokenizer.ggml.model") != "gpt2" or pre not in ("smollm",):
        raise SystemExit(f"only the byte-level BPE 'smollm' pre-tokenizer is implemented, got {pre}")
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    # llama.cpp's "smollm" regexes: single digits, then the GPT-2 byte-level split.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    types = field(reader, "tokenizer.ggml.token_type")
    specials = [tokens[i] for i, t in enumerate(types) if t == 3]  # CONTROL tokens
    tok.add_special_tokens(specials)
    return tok


class Model:
    def __init__(self, reader):
        arch = field(reader, "general.architecture")
        if arch != "llama":
            raise SystemExit(f"only architecture llama is implemented, got {arch}")
        self.n_layer = int(field(reader, "llama.block_count"))
        self.n_head = int(field(reader, "llama.attention.head_count"))
        self.n_kv = int(field(reader, "llama.attention.head_count_kv"))
        self.hidden = int(field(reader, "llama.embedding_length"))
        self.head_dim = self.hidden // self.n_head
        self.theta = float(field(reader, "llama.rope.freq_base", 10000.0))
        self.eps = float(field(reader, "llama.attention.layer_norm_rms_epsilon"))
        if field(reader, "llama.rope.scaling.type") not in (None, "none"):
            raise SystemExit("rope scaling is not implemented in this reference")
        self.t = {}
        for t in reader.tensors:
            # dequantize returns row-major [rows, row_length] = [out, in] for linear weights.
            self.t[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
                [int(n) for n in reversed(t.shape)])
        self.head = self.t.get("output.weight", self.t["token_embd.weight"])

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope_pairs(self, x, n_heads):
        # llama.cpp "normal" RoPE: rotate (x[2i], x[2i+1]) by pos * theta^(-2i/head_dim).
        seq = x.shape[0]
        x = x.reshape(seq, n_heads, self.head_dim // 2, 2)
        freq = self.theta ** (-np.arange(0, self.head_dim, 2) / self.head_dim)
        ang = np.arange(seq)[:, None] * freq[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0], x[..., 1]
        out = np.stack([a * c - b * s, a * s + b * c], axis=-1)
        return out.reshape(seq, n_heads * self.head_dim)

    def nll(self, ids):
        """Per-position NLL of ids[1:] given their prefix, one sequence."""
        seq = len(ids)
        x = self.t["token_embd.weight"][ids]
        mask = np.triu(np.full((seq, seq), -np.inf), 1)
        group = self.n_head // self.n_kv
        hd = self.head_dim
        for l in range(self.n_layer):
            p = f"blk.{l}."
            xn = self.rmsnorm(x, self.t[p + "attn_norm.weight"])
            q = self.rope_pairs(xn @ self.t[p + "attn_q.weight"].T, self.n_head)
            k = self.rope_pairs(xn @ self.t[p + "attn_k.weight"].T, self.n_kv)
            v = xn @ self.t[p + "attn_v.weight"].T
            att = np.empty((seq, self.n_head * hd))
            for h in range(self.n_head):
                g = h // group
                sc = q[:, h * hd:(h + 1) * hd] @ k[:, g * hd:(g + 1) * hd].T / math.sqrt(hd) + mask
                sc = np.exp(sc - sc.max(axis=1, keepdims=True))
                sc /= sc.sum(axis=1, keepdims=True)
                att[:, h * hd:(h + 1) * hd] = sc @ v[:, g * hd:(g + 1) * hd]
            x = x + att @ self.t[p + "attn_output.weight"].T
            xn = self.rmsnorm(x, self.t[p + "ffn_norm.weight"])
            gate = xn @ self.t[p + "ffn_gate.weight"].T
            up = xn @ self.t[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ self.t[p + "ffn_down.weight"].T
        logits = self.rmsnorm(x, self.t["output_norm.weight"])[:-1] @ self.head.T
        mx = logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(logits - mx).sum(axis=1)) + mx[:, 0]
        return lse - logits[np.arange(seq - 1), ids[1:]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--windows", type=int, default=4)
    args = ap.parse_args()

    reader = GGUFReader(args.model)
    tok = build_tokenizer(reader)
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text, add_special_tokens=False).ids
    if field(reader, "tokenizer.ggml.add_bos_token", False):
        ids = [int(field(reader, "tokenizer.ggml.bos_token_id"))] + ids
    n_windows = min(args.windows, len(ids) // args.seq_len)
    model = Model(reader)
    nll = np.concatenate([
        model.nll(np.array(ids[w * args.seq_len:(w + 1) * args.seq_len]))
        for w in range(n_windows)])
    print(json.dumps({"perplexity": float(np.exp(nll.mean())), "mean_nll": float(nll.mean()),
                      "predicted_tokens": int(nll.size), "windows": n_windows,
                      "seq_len": args.seq_len, "text_tokens": len(ids),
                      "first_ids": ids[:8]}))


if __name__ == "__main__":
    main()
