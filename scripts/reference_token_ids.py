#!/usr/bin/env python3
"""Reference token ids for tests/io/test_tokenizer_smollm2.cpp from an independent implementation.

Builds a Hugging Face `tokenizers` BPE tokenizer from the vocabulary and merges stored in the GGUF
file (the same pre-tokenizer as SmolLM2's tokenizer.json: Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], ByteLevel decoder, control tokens added as
special tokens) and prints the ids of each fixed test string as C++ initializers.

    pip install tokenizers gguf numpy
    python3 scripts/reference_token_ids.py [data/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import sys
from pathlib import Path

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parent.parent

# Keep in the same order as kCases in tests/io/test_tokenizer_smollm2.cpp.
CASES = [
    "Hello world",
    "12345",
    "don't",
    "  spaces",
    "\n\n",
    "The price is $3.50, isn't it?",
    "naïve café résumé",
    "東京は日本の首都です",
    "emoji 🤗🚀 done",
    "<|im_start|>user\nHi there<|im_end|>",
    "tabs\tand\t\tmore   trailing   ",
    "I'VE we'll they'RE",
    "Ünïcödé Ωmega ß",
    "x = f(a, b) + 42;  // code",
    "   \n  leading",
]
EXCERPT_BYTES = 2000  # the first 2000 bytes of data/text/prideprejudice.txt (pure ASCII)
WHOLE_BOOKS = ["prideprejudice.txt", "emma.txt"]


def fnv1a64(ids):
    """FNV-1a over the ids as little-endian int32 bytes (as the C++ test computes it)."""
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def field_strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def field_ints(reader, key):
    field = reader.fields[key]
    return [int(field.parts[i][0]) for i in field.data]


def build(gguf_path):
    reader = gguf.GGUFReader(str(gguf_path))
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field_strings(reader, "tokenizer.ggml.merges")]
    types = field_ints(reader, "tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    control = [tokens[i] for i, t in enumerate(types) if t in (3, 4)]
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in control])
    return tok


def main():
    gguf_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data/SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = build(gguf_path)
    excerpt = (ROOT / "data/text/prideprejudice.txt").read_bytes()[:EXCERPT_BYTES].decode("ascii")
    for text in CASES + [excerpt]:
        enc = tok.encode(text, add_special_tokens=False)
        assert tok.decode(enc.ids, skip_special_tokens=False) == text, text
        label = json.dumps(text, ensure_ascii=False) if text is not excerpt else "excerpt"
        print(f"// {label}: {len(enc.ids)} ids")
        print("{" + ", ".join(str(i) for i in enc.ids) + "},")
    for name in WHOLE_BOOKS:
        text = (ROOT / "data/text" / name).read_bytes().decode("utf-8")
        ids = tok.encode(text, add_special_tokens=False).ids
        print(f'{{"{name}", {len(ids)}, 0x{fnv1a64(ids):016x}ULL}},')


if __name__ == "__main__":
    main()
