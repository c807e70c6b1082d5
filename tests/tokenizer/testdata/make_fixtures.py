#!/usr/bin/env python3
"""Writes the two hand-made tokenizer fixtures of tests/tokenizer (run from this folder).

tiny_tokenizer.bin  llama2.c format: int32 max_token_length, then per token float32 score,
                    int32 length, bytes. Ids 0-2 <unk>/bos/eos, 3-258 the byte pieces <0xXX>,
                    then the code points and merges listed in LLAMA2C_PIECES.
tiny_tokenizer.json Hugging Face byte-level BPE: ids 0-255 the GPT-2 byte characters in byte
                    order, then the merges in HF_MERGES, three added tokens, the merges in
                    HF_LATE_MERGES; the Qwen2/3 pre-tokenizer pattern.
The expected ids in tokenizer_test.cc are worked out by hand from these tables.
"""
import json
import struct

LLAMA2C_PIECES = [  # (piece, score), ids from 259
    (" ", -1000.0), ("a", -1000.0), ("b", -1000.0), ("d", -1000.0), ("o", -1000.0),  # 259-263
    ("n", -1000.0), ("t", -1000.0), ("'", -1000.0), ("é", -1000.0), ("\n", -1000.0),  # 264-268
    ("1", -1000.0), ("2", -1000.0),                                                   # 269-270
    (" d", -5.0), ("do", -1.0), (" do", -2.0), ("on", -3.0), ("n't", -4.0),          # 271-275
    ("n'", -6.0), ("12", -7.0), ("\n\n", -8.0), (" é", -9.0),                         # 276-279
    ("ab", -10.0), ("ba", -10.0),                                                     # 280-281
]


def write_llama2c(path):
    pieces = [("<unk>", 0.0), ("\n<s>\n", 0.0), ("\n</s>\n", 0.0)]
    pieces += [("<0x%02X>" % b, 0.0) for b in range(256)]
    pieces += LLAMA2C_PIECES
    encoded = [(p.encode("utf-8"), s) for p, s in pieces]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(b) for b, _ in encoded)))
        for b, s in encoded:
            f.write(struct.pack("<fi", s, len(b)))
            f.write(b)


def byte_chars():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = 0
    table = {}
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


HF_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("d", "o"), ("'", "t"), ("do", "n"),
             ("Ċ", "Ċ"), ("1", "2"), ("Ã", "©")]  # ids 256-264, ranks 0-8
# Ids 268-269 (after the added tokens), ranks 9-10: overlapping pairs where the rank decides.
HF_LATE_MERGES = [("y", "z"), ("x", "y")]
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def write_hf(path):
    chars = byte_chars()
    vocab = {chars[b]: b for b in range(256)}
    for i, (a, b) in enumerate(HF_MERGES):
        vocab[a + b] = 256 + i
    for i, (a, b) in enumerate(HF_LATE_MERGES):
        vocab[a + b] = 268 + i
    added = [("<|endoftext|>", 265, True), ("<|im_start|>", 266, True), ("[X]", 267, False)]
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": s}
                         for c, i, s in added],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_PATTERN}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in HF_MERGES + HF_LATE_MERGES]},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write_llama2c("tiny_tokenizer.bin")
    write_hf("tiny_tokenizer.json")
