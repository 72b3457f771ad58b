"""A byte-level BPE tokenizer trained on the scenes' conversations, written as a Hugging Face tokenizer.json.

The same layout as the Java builder's tokenizer (runtime/.../TokenizerJsonWriter): special tokens at ids
0..4, then the 256 byte tokens in byte order, then merged tokens; ByteLevel pre-tokenizer (GPT-2 regex,
no prefix space); no normalizer or post-processor. The node encodes with Hugging Face's tokenizers (DJL);
this module encodes with its own implementation of the same algorithm, and the Java test
TrainedModelTokenizerTest checks the two agree on the committed samples.

Texts here are ASCII, so the GPT-2 regex's \\p{L} and \\p{N} are [A-Za-z] and [0-9].
"""

import collections
import json
import re

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
BOS, EOS, PAD, IMAGE = 1, 2, 3, 4

_PRETOKEN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_CHARS = _bytes_to_unicode()


def pretokens(text):
    if not text.isascii():
        raise ValueError("the scene tokenizer's Python encoder handles ASCII only")
    return ["".join(BYTE_CHARS[b] for b in piece.encode("utf-8")) for piece in _PRETOKEN.findall(text)]


class Tokenizer:
    def __init__(self, merges):
        self.merges = merges  # list of (left, right), in rank order
        self.ranks = {m: i for i, m in enumerate(merges)}
        tokens = list(SPECIAL_TOKENS) + [BYTE_CHARS[b] for b in range(256)]
        for a, b in merges:  # two merges may spell the same token: it keeps its first id
            if a + b not in tokens:
                tokens.append(a + b)
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.tokens = tokens
        self._cache = {}

    def __len__(self):
        return len(self.tokens)

    def _bpe(self, piece):
        if piece in self._cache:
            return self._cache[piece]
        word = list(piece)
        while len(word) > 1:
            best = min(range(len(word) - 1), key=lambda i: self.ranks.get((word[i], word[i + 1]), 1 << 30))
            pair = (word[best], word[best + 1])
            if pair not in self.ranks:
                break
            word = _merge(word, pair)
        ids = [self.vocab[t] for t in word]
        self._cache[piece] = ids
        return ids

    def encode(self, text):
        out = []
        for piece in pretokens(text):
            out.extend(self._bpe(piece))
        return out

    def decode(self, ids):
        inverse = {c: b for b, c in BYTE_CHARS.items()}
        data = bytearray()
        for i in ids:
            if i < len(SPECIAL_TOKENS):
                continue
            data.extend(inverse[c] for c in self.tokens[i])
        return data.decode("utf-8", errors="replace")

    def to_json(self):
        """The tokenizer.json text, in the Java writer's key order."""
        lines = ['{', '  "version": "1.0",', '  "truncation": null,', '  "padding": null,', '  "added_tokens": [']
        added = []
        for i, s in enumerate(SPECIAL_TOKENS):
            added.append('    {"id": %d, "content": %s, "single_word": false, "lstrip": false, "rstrip": false, '
                         '"normalized": false, "special": true}' % (i, json.dumps(s)))
        lines.append(",\n".join(added))
        lines += ['  ],', '  "normalizer": null,',
                  '  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},',
                  '  "post_processor": null,',
                  '  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},',
                  '  "model": {', '    "type": "BPE",', '    "dropout": null,', '    "unk_token": null,',
                  '    "continuing_subword_prefix": null,', '    "end_of_word_suffix": null,', '    "fuse_unk": false,',
                  '    "byte_fallback": false,', '    "vocab": {']
        lines.append(",\n".join("      %s: %d" % (json.dumps(t, ensure_ascii=False), i) for i, t in enumerate(self.tokens)))
        lines += ['    },', '    "merges": [']
        lines.append(",\n".join("      " + json.dumps(a + " " + b, ensure_ascii=False) for a, b in self.merges))
        lines += ['    ]', '  }', '}']
        return "\n".join(lines) + "\n"


def train(texts, max_merges, min_count=8):
    """Classic BPE over pre-token counts: merge the most frequent pair (ties: first seen) until max_merges."""
    counts = collections.Counter()
    for t in texts:
        counts.update(pretokens(t))
    words = {w: list(w) for w in counts}
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for w, c in counts.items():
            s = words[w]
            for i in range(len(s) - 1):
                pairs[(s[i], s[i + 1])] += c
        if not pairs:
            break
        pair, n = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if n < min_count:
            break
        merges.append(pair)
        for w in counts:
            words[w] = _merge(words[w], pair)
    return Tokenizer(merges)


def _merge(symbols, pair):
    """symbols with every non-overlapping occurrence of pair, left to right, joined into one symbol."""
    out, i = [], 0
    while i < len(symbols):
        if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
