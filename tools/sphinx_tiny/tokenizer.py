"""A byte-level BPE tokenizer trained on the scenes' conversations, written as a Hugging Face tokenizer.json.

The same layout as the Java builder's tokenizer (runtime/.../TokenizerJsonWriter): special tokens at ids
0..4, then the 256 byte tokens in byte order, then merged tokens; ByteLevel pre-tokenizer (GPT-2 regex,
no prefix space); no normalizer or post-processor. The node encodes with Hugging Face's tokenizers (DJL);
this module encodes with its own implementation of the same algorithm, and the Java test
TrainedModelTokenizerTest checks the two agree on the committed samples.

Coordinates: the 101 values 0.00 ... 1.00 are single tokens (COORDINATES), appended after the merges and
listed in "added_tokens" as non-special: Hugging Face matches them in the text before pre-tokenizing, so
"[0.12,0.40]" is "[", "0.12", ",", "0.40", "]" and the answer text is unchanged. Written as four byte-level
pieces ("0", ".", "42"), a coordinate gave cross-entropy no notion that 0.42 is near 0.41 (docs/MODEL.md);
one token per value lets training use soft targets over neighbouring values and initialise the rows with a
code of the value.

Texts here are ASCII, so the GPT-2 regex's \\p{L} and \\p{N} are [A-Za-z] and [0-9].
"""

import collections
import json
import re

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
BOS, EOS, PAD, IMAGE = 1, 2, 3, 4

COORDINATES = ["%.2f" % (i / 100) for i in range(101)]
# Hugging Face finds added tokens leftmost-longest; no coordinate is a prefix of another, so a regex agrees.
_COORDINATE = re.compile(r"(0\.[0-9][0-9]|1\.00)")
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


def split_coordinates(text):
    """The text's parts between coordinate tokens, each pre-tokenized on its own as Hugging Face does."""
    return _COORDINATE.split(text)[0::2]


class Tokenizer:
    def __init__(self, merges, coordinates=True):
        self.merges = merges  # list of (left, right), in rank order
        self.ranks = {m: i for i, m in enumerate(merges)}
        tokens = list(SPECIAL_TOKENS) + [BYTE_CHARS[b] for b in range(256)]
        for a, b in merges:  # two merges may spell the same token: it keeps its first id
            if a + b not in tokens:
                tokens.append(a + b)
        self.bpe_size = len(tokens)
        self.added = list(COORDINATES) if coordinates else []
        self.coordinate_ids = {c: self.bpe_size + i for i, c in enumerate(self.added)}
        tokens += self.added
        self.vocab = {t: i for i, t in enumerate(tokens[:self.bpe_size])}
        self.tokens = tokens
        self._cache = {}

    def coordinate_value(self, token_id):
        """The value a coordinate token stands for, or None for any other token."""
        k = token_id - self.bpe_size
        return k / 100 if self.added and 0 <= k < len(self.added) else None

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
        parts = _COORDINATE.split(text) if self.added else [text]
        for k, part in enumerate(parts):  # odd parts are the coordinates the split kept
            if k % 2:
                out.append(self.coordinate_ids[part])
                continue
            for piece in pretokens(part):
                out.extend(self._bpe(piece))
        return out

    def decode(self, ids):
        inverse = {c: b for b, c in BYTE_CHARS.items()}
        data = bytearray()
        for i in ids:
            if i < len(SPECIAL_TOKENS):
                continue
            if i >= self.bpe_size:
                data.extend(self.tokens[i].encode("ascii"))
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
        for i, s in enumerate(self.added):
            added.append('    {"id": %d, "content": %s, "single_word": false, "lstrip": false, "rstrip": false, '
                         '"normalized": false, "special": false}' % (self.bpe_size + i, json.dumps(s)))
        lines.append(",\n".join(added))
        lines += ['  ],', '  "normalizer": null,',
                  '  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},',
                  '  "post_processor": null,',
                  '  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},',
                  '  "model": {', '    "type": "BPE",', '    "dropout": null,', '    "unk_token": null,',
                  '    "continuing_subword_prefix": null,', '    "end_of_word_suffix": null,', '    "fuse_unk": false,',
                  '    "byte_fallback": false,', '    "vocab": {']
        lines.append(",\n".join("      %s: %d" % (json.dumps(t, ensure_ascii=False), i)
                                 for i, t in enumerate(self.tokens[:self.bpe_size])))
        lines += ['    },', '    "merges": [']
        lines.append(",\n".join("      " + json.dumps(a + " " + b, ensure_ascii=False) for a, b in self.merges))
        lines += ['    ]', '  }', '}']
        return "\n".join(lines) + "\n"


def train(texts, max_merges, min_count=8, coordinates=True):
    """Classic BPE over pre-token counts: merge the most frequent pair (ties: first seen) until max_merges."""
    counts = collections.Counter()
    for t in texts:
        for part in (split_coordinates(t) if coordinates else [t]):
            counts.update(pretokens(part))
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
    return Tokenizer(merges, coordinates)


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
