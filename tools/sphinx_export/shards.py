"""Merges LLaMA2-Accessory's model-parallel checkpoint shards into one state dict.

Accessory saves one `consolidated.NN-of-MM.model.pth` per model-parallel rank (optionally wrapped as
{"model": state_dict}), keys prefixed with "llma." (MetaModel keeps the Transformer as `self.llma`). Which
tensors are split, and along which dimension, follows fairscale's layers as Accessory's own loader
(accessory/util/tensor_parallel.py, _MODEL_PARALLEL_MODULES) merges them:

  ColumnParallelLinear  weight [out/M, in], bias [out/M]  -> concatenate on dim 0
  RowParallelLinear     weight [out, in/M]                -> dim 1; its bias is replicated (added after
                                                             the all-reduce, so every rank holds all of it)
  ParallelEmbedding     weight [V, dim/M]                 -> dim 1 (fairscale splits the embedding
                                                             dimension; VocabParallelEmbedding, which splits
                                                             the vocabulary, is not used by llama_ens5)

In llama_ens5 (SPHINX-1k, SPHINX-v2-1k) those layers are the decoder's only: wq, wk, wv, w1, w3 and output
are column-parallel, wo and w2 row-parallel, tok_embeddings a ParallelEmbedding. The visual side
(qformer_proj, visual_proj: plain nn.Linear + nn.LayerNorm; start_img, end_img: nn.Parameter; the four
encoders: ordinary modules) is replicated on every rank, as are the RMSNorm weights.

The rules are by name, so no model needs to be built to merge.
"""

import collections
import os
import re

import torch

PREFIX = "llma."

_COLUMN = re.compile(r"^(layers\.\d+\.(attention\.w[qkv]|feed_forward\.w[13])|output)\.(weight|bias)$")
_ROW = re.compile(r"^layers\.\d+\.(attention\.wo|feed_forward\.w2)\.weight$")
_EMBEDDING = re.compile(r"^tok_embeddings\.weight$")
_SHARD = re.compile(r"^consolidated\.(\d{2})-of-(\d{2})\.model\.pth$")


def split_dim(name):
    """The dimension along which fairscale splits `name` (without the "llma." prefix), or None if replicated."""
    if _COLUMN.match(name):
        return 0
    if _ROW.match(name) or _EMBEDDING.match(name):
        return 1
    return None


def shard_paths(directory):
    """The shard files of a checkpoint folder in rank order; refuses a missing or mixed set."""
    found = {}
    total = None
    for f in os.listdir(directory):
        m = _SHARD.match(f)
        if not m:
            continue
        rank, of = int(m.group(1)), int(m.group(2))
        if total not in (None, of):
            raise ValueError("%s: shards of different model-parallel sizes (%d and %d)" % (directory, total, of))
        total = of
        found[rank] = os.path.join(directory, f)
    if total is None:
        raise ValueError("%s: no consolidated.NN-of-MM.model.pth shards" % directory)
    missing = [r for r in range(total) if r not in found]
    if missing:
        raise ValueError("%s: missing shard(s) %s of %d" % (directory, missing, total))
    return [found[r] for r in range(total)]


def load_shard(path):
    """One shard's state dict, on the CPU; mapped from disk where torch can (>= 2.1), so shards of a 13B model
    need not be read into memory all at once."""
    try:
        shard = torch.load(path, map_location="cpu", mmap=True)
    except TypeError:  # torch < 2.1 has no mmap
        shard = torch.load(path, map_location="cpu")
    if isinstance(shard, dict) and isinstance(shard.get("model"), dict):
        shard = shard["model"]
    return shard


def merge(shards, prefix=PREFIX):
    """One state dict from the ranks' state dicts (in rank order), names without `prefix`.

    Split tensors are concatenated; replicated ones must be equal on every rank (Accessory only warns; a
    difference here would mean the ranks were not one model, so it is an error). The shards are emptied as
    they are merged, so the peak is about one copy of the model."""
    keys = list(shards[0].keys())
    for i, s in enumerate(shards[1:], 1):
        if set(s.keys()) != set(keys):
            diff = sorted(set(s.keys()) ^ set(keys))[:5]
            raise ValueError("shard %d has different tensor names from shard 0, e.g. %s" % (i, diff))
    merged = collections.OrderedDict()
    for key in keys:
        name = key[len(prefix):] if prefix and key.startswith(prefix) else key
        parts = [s.pop(key) for s in shards]
        dim = split_dim(name)
        if dim is not None:
            merged[name] = torch.cat(parts, dim=dim) if len(parts) > 1 else parts[0]
        else:
            for i, p in enumerate(parts[1:], 1):
                if p.shape != parts[0].shape or not torch.equal(p, parts[0]):
                    raise ValueError("replicated tensor %s differs between shard 0 and shard %d" % (name, i))
            merged[name] = parts[0]
    return merged


def load_merged(directory, prefix=PREFIX):
    """The merged state dict of a checkpoint folder."""
    return merge([load_shard(p) for p in shard_paths(directory)], prefix)


def split(state, ranks, prefix=PREFIX):
    """The inverse of merge, as fairscale lays a model out over `ranks` (each rank's slice is a contiguous
    chunk; fairscale's _initialize_affine_weight uses torch.split by the per-partition size, stride 1).
    Used by the tests and handy for making toy checkpoints."""
    out = [collections.OrderedDict() for _ in range(ranks)]
    for name, t in state.items():
        dim = split_dim(name)
        if dim is None:
            parts = [t.clone() for _ in range(ranks)]
        else:
            if t.shape[dim] % ranks:
                raise ValueError("%s: dim %d (%d) not divisible by %d ranks" % (name, dim, t.shape[dim], ranks))
            parts = [p.clone() for p in torch.split(t, t.shape[dim] // ranks, dim=dim)]
        for r in range(ranks):
            out[r][prefix + name] = parts[r]
    return out
