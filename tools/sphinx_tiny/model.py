"""SPHINX-tiny in PyTorch: the same computation as the Java graph builder's VisionGraph and DecoderGraph.

Parameter names, shapes and layouts are the Java builder's (runtime/.../graph/*Graph.java and
docs/BUNDLE.md): linear weights are stored [in, out] and applied as x @ W + b, convolutions [out, in, kh, kw].
The Java bundle builder (`bin/build-bundle --weights DIR`) reads the exported tensors by these names and
writes the ONNX graphs the node serves; parity.py checks that those graphs and this module agree.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5


class Config:
    def __init__(self, **kw):
        # decoder
        self.vocab_size = kw.get("vocab_size", 512)
        self.hidden_size = kw.get("hidden_size", 128)
        self.num_layers = kw.get("num_layers", 4)
        self.num_heads = kw.get("num_heads", 4)
        self.num_kv_heads = kw.get("num_kv_heads", 2)
        self.head_dim = kw.get("head_dim", 32)
        self.intermediate_size = kw.get("intermediate_size", 352)
        self.max_context_tokens = kw.get("max_context_tokens", 1024)
        self.rope_theta = kw.get("rope_theta", 10000.0)
        self.rms_norm_eps = kw.get("rms_norm_eps", 1e-5)
        # vision
        self.image_size = kw.get("image_size", 224)
        self.grid = kw.get("grid", 2)
        self.view_size = kw.get("view_size", 112)
        self.patch_size = kw.get("patch_size", 16)
        self.vit_width = kw.get("vit_width", 96)
        self.vit_layers = kw.get("vit_layers", 2)
        self.vit_heads = kw.get("vit_heads", 4)
        self.conv_width = kw.get("conv_width", 32)
        self.num_queries = kw.get("num_queries", 6)

    @property
    def patch_tokens(self):
        g = self.view_size // self.patch_size
        return 1 + g * g

    @property
    def tokens_per_view(self):
        return self.patch_tokens + self.num_queries + 2

    @property
    def num_views(self):
        return 1 + self.grid * self.grid

    @property
    def tokens_per_image(self):
        return self.num_views * self.tokens_per_view

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items()}


class Named(nn.Module):
    """Parameters under the Java builder's dotted names."""

    def __init__(self):
        super().__init__()
        self._names = {}

    def add(self, name, tensor):
        p = nn.Parameter(tensor)
        key = name.replace(".", "__")
        self.register_parameter(key, p)
        self._names[name] = key
        return p

    def w(self, name):
        return getattr(self, self._names[name])

    def named_weights(self):
        return {name: getattr(self, key) for name, key in self._names.items()}


def _normal(shape, std):
    return torch.randn(*shape) * std


class SphinxTiny(Named):
    def __init__(self, cfg, seed=0):
        super().__init__()
        self.cfg = cfg
        torch.manual_seed(seed)
        self._init_vision()
        self._init_decoder()

    # ---- parameters ------------------------------------------------------------------------------------------

    def _init_vision(self):
        c = self.cfg
        p, cv, cc, h = c.patch_size, c.vit_width, c.conv_width, c.hidden_size
        self.add("vit.patch_embed.weight", _normal((cv, 3, p, p), 1 / math.sqrt(3 * p * p)))
        self.add("vit.patch_embed.bias", torch.zeros(cv))
        self.add("vit.class_embedding", _normal((cv,), 0.5))
        self.add("vit.position_embedding", sincos_positions(c))
        for l in range(c.vit_layers):
            b = "vit.blocks.%d." % l
            self.add(b + "ln1.weight", torch.ones(cv))
            self.add(b + "ln1.bias", torch.zeros(cv))
            for m in "qkvo":
                scale = 1 / math.sqrt(cv) / (math.sqrt(2 * c.vit_layers) if m == "o" else 1)
                self.add(b + m + "_proj.weight", _normal((cv, cv), scale))
                self.add(b + m + "_proj.bias", torch.zeros(cv))
            self.add(b + "ln2.weight", torch.ones(cv))
            self.add(b + "ln2.bias", torch.zeros(cv))
            self.add(b + "fc1.weight", _normal((cv, 4 * cv), 1 / math.sqrt(cv)))
            self.add(b + "fc1.bias", torch.zeros(4 * cv))
            self.add(b + "fc2.weight", _normal((4 * cv, cv), 1 / math.sqrt(4 * cv) / math.sqrt(2 * c.vit_layers)))
            self.add(b + "fc2.bias", torch.zeros(cv))
        self.add("vit.ln_post.weight", torch.ones(cv))
        self.add("vit.ln_post.bias", torch.zeros(cv))
        self.add("conv.stem.weight", _normal((cc, 3, p, p), 1 / math.sqrt(3 * p * p)))
        self.add("conv.stem.bias", torch.zeros(cc))
        self.add("conv.dw.weight", _normal((cc, 1, 3, 3), 1 / 3))
        self.add("conv.dw.bias", torch.zeros(cc))
        self.add("conv.pw.weight", _normal((cc, cc, 1, 1), 1 / math.sqrt(cc)))
        self.add("conv.pw.bias", torch.zeros(cc))
        self.add("proj.weight", _normal((cv + cc, h), 1 / math.sqrt(cv + cc)))
        self.add("proj.bias", torch.zeros(h))
        self.add("proj.ln.weight", torch.ones(h))
        self.add("proj.ln.bias", torch.zeros(h))
        self.add("qformer.queries", _normal((c.num_queries, cv), 1.0))
        for m in "qkvo":
            self.add("qformer." + m + "_proj.weight", _normal((cv, cv), 1 / math.sqrt(cv)))
            self.add("qformer." + m + "_proj.bias", torch.zeros(cv))
        self.add("qformer.proj.weight", _normal((cv, h), 1 / math.sqrt(cv)))
        self.add("qformer.proj.bias", torch.zeros(h))
        self.add("qformer.ln.weight", torch.ones(h))
        self.add("qformer.ln.bias", torch.zeros(h))
        self.add("start_embedding", _normal((h,), 1.0))
        self.add("end_embedding", _normal((h,), 1.0))

    def _init_decoder(self):
        c = self.cfg
        h, q, kv, inter = c.hidden_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.intermediate_size
        out_scale = 1 / math.sqrt(2 * c.num_layers)
        self.add("embed_tokens", _normal((c.vocab_size, h), 1.0))
        for l in range(c.num_layers):
            p = "layers.%d." % l
            self.add(p + "input_norm", torch.ones(h))
            self.add(p + "q_proj", _normal((h, q), 1 / math.sqrt(h)))
            self.add(p + "k_proj", _normal((h, kv), 1 / math.sqrt(h)))
            self.add(p + "v_proj", _normal((h, kv), 1 / math.sqrt(h)))
            self.add(p + "o_proj", _normal((q, h), out_scale / math.sqrt(q)))
            self.add(p + "post_attention_norm", torch.ones(h))
            self.add(p + "gate_proj", _normal((h, inter), 1 / math.sqrt(h)))
            self.add(p + "up_proj", _normal((h, inter), 1 / math.sqrt(h)))
            self.add(p + "down_proj", _normal((inter, h), out_scale / math.sqrt(inter)))
        self.add("final_norm", torch.ones(h))
        self.add("lm_head", _normal((h, c.vocab_size), 1 / math.sqrt(h)))
        cos, sin = rope_tables(c)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    # ---- vision (VisionGraph) ----------------------------------------------------------------------------------

    def _attention(self, query, context, prefix, width):
        heads = self.cfg.vit_heads
        d = width // heads
        n, sq, _ = query.shape
        sk = context.shape[1]
        q = (query @ self.w(prefix + "q_proj.weight") + self.w(prefix + "q_proj.bias")).view(n, sq, heads, d).transpose(1, 2)
        k = (context @ self.w(prefix + "k_proj.weight") + self.w(prefix + "k_proj.bias")).view(n, sk, heads, d).transpose(1, 2)
        v = (context @ self.w(prefix + "v_proj.weight") + self.w(prefix + "v_proj.bias")).view(n, sk, heads, d).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(d))
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(n, sq, width)
        return out @ self.w(prefix + "o_proj.weight") + self.w(prefix + "o_proj.bias")

    def _ln(self, x, prefix):
        return F.layer_norm(x, x.shape[-1:], self.w(prefix + ".weight"), self.w(prefix + ".bias"), LN_EPS)

    def encode_images(self, pixels):
        """pixel_values [N, 3, S, S] → image_embeds [N, tokens_per_view, H]."""
        c = self.cfg
        n = pixels.shape[0]
        cv, cc, p = c.vit_width, c.conv_width, c.patch_size
        patches = F.conv2d(pixels, self.w("vit.patch_embed.weight"), self.w("vit.patch_embed.bias"), stride=p)
        patches = patches.reshape(n, cv, -1).transpose(1, 2)
        cls = self.w("vit.class_embedding").view(1, 1, cv).expand(n, 1, cv)
        x = torch.cat([cls, patches], dim=1) + self.w("vit.position_embedding").view(1, -1, cv)
        for l in range(c.vit_layers):
            b = "vit.blocks.%d." % l
            nx = self._ln(x, b + "ln1")
            x = x + self._attention(nx, nx, b, cv)
            n2 = self._ln(x, b + "ln2")
            mlp = F.gelu(n2 @ self.w(b + "fc1.weight") + self.w(b + "fc1.bias"))
            x = x + mlp @ self.w(b + "fc2.weight") + self.w(b + "fc2.bias")
        vit = self._ln(x, "vit.ln_post")

        stem = F.gelu(F.conv2d(pixels, self.w("conv.stem.weight"), self.w("conv.stem.bias"), stride=p))
        dw = F.gelu(F.conv2d(stem, self.w("conv.dw.weight"), self.w("conv.dw.bias"), padding=1, groups=cc))
        pw = F.conv2d(stem + dw, self.w("conv.pw.weight"), self.w("conv.pw.bias"))
        tokens = pw.reshape(n, cc, -1).transpose(1, 2)
        conv = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

        patch_tokens = torch.cat([vit, conv], dim=2) @ self.w("proj.weight") + self.w("proj.bias")
        patch_tokens = self._ln(patch_tokens, "proj.ln")
        queries = self.w("qformer.queries").view(1, -1, cv).expand(n, -1, cv)
        attended = queries + self._attention(queries, vit, "qformer.", cv)
        query_tokens = self._ln(attended @ self.w("qformer.proj.weight") + self.w("qformer.proj.bias"), "qformer.ln")
        h = c.hidden_size
        start = self.w("start_embedding").view(1, 1, h).expand(n, 1, h)
        end = self.w("end_embedding").view(1, 1, h).expand(n, 1, h)
        return torch.cat([start, patch_tokens, query_tokens, end], dim=1)

    # ---- decoder (DecoderGraph) ----------------------------------------------------------------------------

    def _rms(self, x, name):
        inv = torch.reciprocal(torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.cfg.rms_norm_eps))
        return x * inv * self.w(name)

    def _rope(self, x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def _embed(self, ids, image_embeds, image_start):
        x = F.embedding(ids.clamp(max=self.cfg.vocab_size - 1), self.w("embed_tokens"))
        if image_embeds is not None:
            m = image_embeds.shape[1]
            x = torch.cat([x[:, :image_start], image_embeds, x[:, image_start + m:]], dim=1)
        return x

    def _qkv(self, x, p, start):
        """RoPE'd queries [B, KH, G, L, D] (already scaled) and keys/values [B, KH, L, D] of positions start.."""
        c = self.cfg
        b, length, _ = x.shape
        nh, kh, d = c.num_heads, c.num_kv_heads, c.head_dim
        cos = self.rope_cos[start:start + length].view(1, length, 1, d)
        sin = self.rope_sin[start:start + length].view(1, length, 1, d)
        n = self._rms(x, p + "input_norm")
        q = self._rope((n @ self.w(p + "q_proj")).view(b, length, nh, d), cos, sin)
        k = self._rope((n @ self.w(p + "k_proj")).view(b, length, kh, d), cos, sin)
        v = (n @ self.w(p + "v_proj")).view(b, length, kh, d)
        # Query head j reads KV head j // groups: grouping the query heads by KV head avoids copying K and V.
        q = q.transpose(1, 2).reshape(b, kh, nh // kh, length, d) * (1.0 / math.sqrt(d))
        return q, k.transpose(1, 2), v.transpose(1, 2)

    def _attend(self, q, k, v, mask):
        """q [B, KH, G, L, D], k/v [B, KH, Lk, D], additive mask [L, Lk] → (output [B, L, NH·D], probs [B, NH, L, Lk])."""
        b, kh, g, length, d = q.shape
        scores = q.reshape(b, kh, g * length, d) @ k.transpose(2, 3)
        probs = torch.softmax(scores.view(b, kh, g, length, -1) + mask, dim=-1)
        out = probs.view(b, kh, g * length, -1) @ v
        return out.view(b, kh * g, length, d).transpose(1, 2).reshape(b, length, kh * g * d), probs.view(b, kh * g, length, -1)

    def _block_tail(self, x, att, p):
        x = x + att @ self.w(p + "o_proj")
        n2 = self._rms(x, p + "post_attention_norm")
        return x + (F.silu(n2 @ self.w(p + "gate_proj")) * (n2 @ self.w(p + "up_proj"))) @ self.w(p + "down_proj")

    def _causal(self, length):
        mask = getattr(self, "_mask_cache", None)
        if mask is None or mask.shape[0] < length:
            mask = torch.full((length, length), -1e30).triu(1)
            self._mask_cache = mask
        return mask[:length, :length]

    def logits(self, x):
        return self._rms(x, "final_norm") @ self.w("lm_head")

    def decode(self, ids, image_embeds, image_start=1, capture=()):
        """Logits [B, L, V] for token ids [B, L] whose positions image_start.. hold the image rows [B, M, H].
        With capture = ((layer, head), ...), also the attention probabilities [B, L, L] of those heads."""
        x = self._embed(ids, image_embeds, image_start)
        mask = self._causal(ids.shape[1])
        captured = []
        for l in range(self.cfg.num_layers):
            p = "layers.%d." % l
            q, k, v = self._qkv(x, p, 0)
            att, probs = self._attend(q, k, v, mask)
            captured += [probs[:, head] for layer, head in capture if layer == l]
            x = self._block_tail(x, att, p)
        logits = self.logits(x)
        return (logits, captured) if capture else logits

    # ---- fan-out: one prefix per scene, many suffixes attending to it (training and evaluation only) --------

    def prefix_cache(self, ids, image_embeds, image_start=1):
        """Per layer (K, V) [B, KH, P, D] of prefixes ids [B, P] (equal lengths) whose image rows start at
        image_start. No logits: nothing in a prefix is predicted."""
        x = self._embed(ids, image_embeds, image_start)
        mask = self._causal(ids.shape[1])
        cache = []
        for l in range(self.cfg.num_layers):
            p = "layers.%d." % l
            q, k, v = self._qkv(x, p, 0)
            cache.append((k, v))
            if l + 1 < self.cfg.num_layers:  # the last layer's outputs feed only logits, which a prefix has none of
                att, _ = self._attend(q, k, v, mask)
                x = self._block_tail(x, att, p)
        return cache

    def decode_suffixes(self, cache, owner, ids, capture=()):
        """Logits [N, S, V] of suffixes ids [N, S] that continue prefix owner[n] of the cache (right-padded:
        padding follows a suffix's tokens, so causality keeps it out of them). Equal to decode() of each
        prefix + suffix at the suffix's positions. With capture, also those heads' probabilities [N, S, P]
        over the prefix positions."""
        n, length = ids.shape
        start = cache[0][0].shape[2]
        x = F.embedding(ids.clamp(max=self.cfg.vocab_size - 1), self.w("embed_tokens"))
        mask = torch.cat([torch.zeros(length, start), self._causal(length)], dim=1)
        captured = []
        for l in range(self.cfg.num_layers):
            p = "layers.%d." % l
            q, k, v = self._qkv(x, p, start)
            pk, pv = cache[l]
            att, probs = self._attend(q, torch.cat([pk[owner], k], dim=2), torch.cat([pv[owner], v], dim=2), mask)
            captured += [probs[:, head, :, :start] for layer, head in capture if layer == l]
            x = self._block_tail(x, att, p)
        logits = self.logits(x)
        return (logits, captured) if capture else logits

    def init_coordinate_rows(self, first_id, count=101, seed=0):
        """Rows of embed_tokens and columns of lm_head for the coordinate tokens 0.00 ... 1.00 start as a smooth
        code of the value (sines and cosines at several frequencies), so neighbouring values start similar."""
        h = self.cfg.hidden_size
        values = torch.arange(count, dtype=torch.float32).view(-1, 1) / (count - 1)
        freqs = torch.pow(torch.tensor(2.0), torch.arange(h // 2, dtype=torch.float32) * (6.0 / (h // 2))).view(1, -1)
        angles = values * freqs * math.pi
        code = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # [count, h], unit variance per row
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            e = self.w("embed_tokens")
            e[first_id:first_id + count] = code + 0.1 * torch.randn(count, h, generator=gen)
            head = self.w("lm_head")
            head[:, first_id:first_id + count] = code.t() / math.sqrt(h)


def sincos_positions(c):
    """2-D sine-cosine position embedding of the ViT's patch grid (row 0, the class token, zero): a start
    that already tells patches apart, so the short training spends itself on the task, not on positions."""
    g = c.view_size // c.patch_size
    quarter = c.vit_width // 4
    freqs = torch.pow(torch.tensor(100.0), -torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32), indexing="ij")
    ax = xs.reshape(-1, 1) * freqs.view(1, -1)
    ay = ys.reshape(-1, 1) * freqs.view(1, -1)
    grid = torch.cat([torch.sin(ax), torch.cos(ax), torch.sin(ay), torch.cos(ay)], dim=1)
    pos = torch.zeros(1 + g * g, c.vit_width)
    pos[1:, : grid.shape[1]] = grid
    return pos * 0.5


def rope_tables(c):
    """DecoderGraph.ropeTables: float64 angles, float32 tables [max_context, D], halves duplicated."""
    d = c.head_dim
    half = d // 2
    pos = torch.arange(c.max_context_tokens, dtype=torch.float64).view(-1, 1)
    inv = torch.pow(torch.tensor(c.rope_theta, dtype=torch.float64), -2.0 * torch.arange(half, dtype=torch.float64) / d)
    ang = pos * inv.view(1, -1)
    cos = torch.cos(ang).float()
    sin = torch.sin(ang).float()
    return torch.cat([cos, cos], dim=1), torch.cat([sin, sin], dim=1)


class AuxHeads(nn.Module):
    """Training-only linear heads on the vision output's patch tokens (never exported): dense supervision
    (what is at each patch; for the patch holding an object's centre, its box, box digits and keypoints) that
    makes the encoder's tokens informative long before the language loss alone would."""

    def __init__(self, cfg):
        super().__init__()
        h = cfg.hidden_size
        self.cfg = cfg
        self.cls = nn.Linear(h, 6)
        self.colour = nn.Linear(h, 7)
        self.size = nn.Linear(h, 3)
        self.owner = nn.Linear(h, 1)
        self.box = nn.Linear(h, 4)
        self.digits = nn.Linear(h, 80)
        self.keypoints = nn.Linear(h, 34)
        self.tile_box = nn.Linear(h, 4)

    def loss(self, embeds, t):
        """embeds [B·5, T_view, H] from encode_images; t from data.stack_targets."""
        c = self.cfg
        g = c.view_size // c.patch_size
        n = g * g
        b = embeds.shape[0] // c.num_views
        patches = embeds.reshape(b, c.num_views, c.tokens_per_view, c.hidden_size)[:, :, 2:2 + n]  # skip start, cls
        ce = F.cross_entropy
        loss = (ce(self.cls(patches).reshape(-1, 6), t["cls"].reshape(-1))
                + ce(self.colour(patches).reshape(-1, 7), t["colour"].reshape(-1))
                + ce(self.size(patches).reshape(-1, 3), t["size"].reshape(-1)))
        glob = patches[:, 0]  # [B, n, H]
        loss = loss + F.binary_cross_entropy_with_logits(self.owner(glob).squeeze(-1), t["owner"])
        owner = t["object"].reshape(-1) >= 0  # every global patch about an object regresses its box
        flat = glob.reshape(-1, c.hidden_size)[owner]
        if flat.shape[0]:
            loss = loss + 5.0 * F.l1_loss(self.box(flat), t["box"].reshape(-1, 4)[owner])
            loss = loss + 0.5 * ce(self.digits(flat).reshape(-1, 10), t["digits"].reshape(-1, 8)[owner].reshape(-1))
            person = t["is_person"].reshape(-1)[owner] > 0
            if person.any():
                loss = loss + 5.0 * F.l1_loss(self.keypoints(flat[person]), t["keypoints"].reshape(-1, 34)[owner][person])
        # Tiles: the box of the object covering a patch, in the tile's own coordinates (a tile's encoder cannot
        # know which tile it sees; the decoder, which knows, can place it).
        covered = t["view_object"][:, 1:] >= 0
        if covered.any():
            loss = loss + 5.0 * F.l1_loss(self.tile_box(patches[:, 1:][covered]), t["tile_box"][covered])
        return loss
