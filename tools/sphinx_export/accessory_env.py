"""LLaMA2-Accessory's llama_ens5 on this machine: where its sources are, the verification-only shims that let
Debian's torch 1.13 run it, and the reduced sizes the fixture builds it at. Used by accessory_fixture.py only;
export_sphinx.py imports nothing from here (on a machine with Accessory's own environment it needs none of it).

Sources are read in place from ACCESSORY_SOURCES (default /work/ext), one folder per project, nothing copied:
  accessory/        Alpha-VLLM/LLaMA2-Accessory            (the `accessory` package)
  transformers/src  huggingface/transformers               (Blip2Model, Blip2Config)
  open_clip/src     mlfoundations/open_clip                (ViT-L-14, convnext_xxlarge)
  timm/             huggingface/pytorch-image-models       (convnext_xxlarge's trunk)
  fairscale/        facebookresearch/fairscale             (model-parallel layers)
  dinov2/           facebookresearch/dinov2                (dinov2_vitg14 via torch.hub, source="local")
  huggingface_hub/src                                      (imported by transformers)
  ftfy/             rspeer/python-ftfy                     (imported by open_clip's tokenizer)
The exact commits are in README.md.

Shims (each installed by install_shims(), each only where this torch lacks the thing):
  1. transformers without the `safetensors` package (not in Debian; building Blip2 never reads or writes a
     safetensors file): transformers.dependency_versions_check replaced by an empty module (it refuses to import
     transformers without it), and a stand-in `safetensors.torch` with the two helpers pytorch_utils imports
     (storage_ptr, storage_size: the tensor's storage address and byte size, used only when saving). The
     stand-in reports no package version, so transformers' is_safetensors_available() stays False.
  2. F.scaled_dot_product_attention written out (torch 2.0 API, absent in 1.13): softmax(q·kᵀ/√d + mask)·v,
     a boolean mask keeping True, a float mask added. llama_ens5's Attention calls it.
  3. dist.all_gather_into_tensor on gloo (NCCL-only in 1.13): all_gather into a list (of tensors made outside
     inference mode: gloo fills them from its own thread), then cat. llama_ens5's
     encode_image gathers the Q-Former and ensemble features with it.
  4. F.interpolate on a CPU float16 tensor for modes this torch has no CPU Half kernel for: computed in float32
     from the float16 values, rounded back to float16, which is what CUDA's kernels do (float accumulation,
     float16 result). encode_image's two `image.half()` resizes (bicubic 448 -> 224, nearest 224 -> 256).
  5. torch.hub.load("facebookresearch/dinov2", ...) redirected to the local dinov2 checkout (source="local").

Reduced sizes (reduced_sizes()): only what the configs own -
  Blip2Config (Accessory's bundled blip2-opt-2.7b config.json): vision, Q-Former and OPT text sizes;
  open_clip's ViT-L-14 and convnext_xxlarge model configs (and the timm convnext_xxlarge depths/dims);
  DINOv2's vit_giant2 width/depth/heads; the decoder's ModelArgs come from the fixture's config.json.
  Geometry stays: 224 views from 448, patch 14 (257 tokens), 32 queries, ConvNeXt 256 -> 8x8 -> 16x16, DINOv2's
  518-trained position embedding interpolated to 16x16.
llama_ens5 hard-codes the full encoders' output widths in three places (nn.Linear(768, dim),
nn.Linear(3072 + 1024 + 1536, dim), the assert on (3072, 8, 8)). Those three literals are substituted by the
reduced widths in the module's source before it is executed (each must occur exactly once); every other line of
llama_ens5.py runs as written.
"""

import functools
import importlib
import importlib.util
import os
import sys
import types

import torch
import torch.nn.functional as F

SOURCES = os.environ.get("ACCESSORY_SOURCES", "/work/ext")

# the reduced model: small widths, every layer kind present at least once
QFORMER_WIDTH = 32
CLIP_WIDTH = 32
CONVNEXT_DIMS = [8, 16, 24, 40]
DINOV2_WIDTH = 48
VISUAL_WIDTH = CLIP_WIDTH + CONVNEXT_DIMS[-1] + DINOV2_WIDTH


def source_paths():
    """The import roots, in the order they go on sys.path."""
    return [os.path.join(SOURCES, p) for p in ("accessory", "transformers/src", "open_clip/src", "timm", "fairscale",
                                               "dinov2", "huggingface_hub/src", "ftfy")]


def install_paths():
    for p in reversed(source_paths()):
        if not os.path.isdir(p):
            raise SystemExit("%s missing: check the sources out as README.md says (ACCESSORY_SOURCES=%s)" % (p, SOURCES))
        if p not in sys.path:
            sys.path.insert(0, p)
    os.environ.setdefault("XFORMERS_DISABLED", "1")


def _sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False):
    if dropout_p:
        raise ValueError("shim: dropout not supported")
    scores = query @ key.transpose(-2, -1) / (query.shape[-1] ** 0.5)
    if is_causal:
        n, m = query.shape[-2], key.shape[-2]
        attn_mask = torch.ones(n, m, dtype=torch.bool, device=query.device).tril(m - n)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return torch.softmax(scores, dim=-1) @ value


def _all_gather_into_tensor(output, input, group=None, async_op=False):
    import torch.distributed as dist

    with torch.inference_mode(False):  # gloo writes from its own thread, outside forward_inference's mode
        parts = [torch.empty(input.shape, dtype=input.dtype) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, input.clone(), group=group)
    output.copy_(torch.cat(parts))
    return None


def _half_cpu_interpolate(original):
    @functools.wraps(original)
    def interpolate(input, *args, **kwargs):
        if input.dtype == torch.float16 and input.device.type == "cpu":
            try:
                return original(input, *args, **kwargs)
            except RuntimeError as e:
                if "Half" not in str(e):
                    raise
                return original(input.float(), *args, **kwargs).half()
        return original(input, *args, **kwargs)

    return interpolate


def _stub_dependency_check():
    name = "transformers.dependency_versions_check"
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.dep_version_check = lambda pkg, hint=None: None
        sys.modules[name] = stub
    try:
        import safetensors  # noqa: F401  the real package, where installed
    except ImportError:
        import importlib.machinery

        package = types.ModuleType("safetensors")
        package.__spec__ = importlib.machinery.ModuleSpec("safetensors", None, is_package=True)
        package.__path__ = []
        helpers = types.ModuleType("safetensors.torch")
        helpers.__spec__ = importlib.machinery.ModuleSpec("safetensors.torch", None)
        helpers.storage_ptr = lambda t: t.storage().data_ptr()
        helpers.storage_size = lambda t: t.storage().size() * t.element_size()
        package.torch = helpers
        sys.modules["safetensors"] = package
        sys.modules["safetensors.torch"] = helpers


def _local_hub(original):
    @functools.wraps(original)
    def load(repo_or_dir, model, *args, **kwargs):
        if repo_or_dir == "facebookresearch/dinov2":
            kwargs["source"] = "local"
            return original(os.path.join(SOURCES, "dinov2"), model, *args, **kwargs)
        return original(repo_or_dir, model, *args, **kwargs)

    return load


def install_shims():
    """Paths and the five shims the module docstring lists; idempotent."""
    import torch.distributed as dist

    install_paths()
    _stub_dependency_check()
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa
    if not getattr(dist, "_shim_gather", False):
        dist.all_gather_into_tensor = _all_gather_into_tensor
        dist._shim_gather = True
    if not getattr(F.interpolate, "_shim_half", False):
        F.interpolate = _half_cpu_interpolate(F.interpolate)
        F.interpolate._shim_half = True
        torch.nn.functional.interpolate = F.interpolate
    if not getattr(torch.hub.load, "_shim_local", False):
        torch.hub.load = _local_hub(torch.hub.load)
        torch.hub.load._shim_local = True


def _reduce_blip2():
    from transformers import Blip2Config, OPTConfig

    original = Blip2Config.from_pretrained.__func__
    if getattr(original, "_shim_reduced", False):
        return

    def from_pretrained(cls, *args, **kwargs):
        cfg = original(cls, *args, **kwargs)
        v = cfg.vision_config
        v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.num_attention_heads = 24, 48, 2, 2
        q = cfg.qformer_config
        q.hidden_size, q.intermediate_size, q.num_hidden_layers, q.num_attention_heads = QFORMER_WIDTH, 64, 2, 2
        q.encoder_hidden_size = v.hidden_size  # as Blip2Config.__init__ ties them
        q.vocab_size = 64  # the Q-Former's word embeddings are unused by get_qformer_features
        cfg.text_config = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                    num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=16)
        assert cfg.num_query_tokens == 32 and v.image_size == 224 and v.patch_size == 14
        return cfg

    from_pretrained._shim_reduced = True
    Blip2Config.from_pretrained = classmethod(from_pretrained)


def _reduce_open_clip():
    import open_clip.factory as factory
    import timm.models._registry as registry

    vit = factory._MODEL_CONFIGS["ViT-L-14"]
    assert vit["vision_cfg"]["image_size"] == 224 and vit["vision_cfg"]["patch_size"] == 14
    vit["embed_dim"] = 16
    vit["vision_cfg"].update(layers=2, width=CLIP_WIDTH, head_width=16)
    vit["text_cfg"].update(vocab_size=64, width=16, heads=2, layers=1)
    cx = factory._MODEL_CONFIGS["convnext_xxlarge"]
    assert cx["vision_cfg"]["image_size"] == 256
    cx["embed_dim"] = 16
    cx["text_cfg"].update(vocab_size=64, width=16, heads=2, layers=1)
    entry = registry._model_entrypoints["convnext_xxlarge"]
    if not isinstance(entry, functools.partial):  # timm's convnext_xxlarge lets kwargs override depths/dims
        registry._model_entrypoints["convnext_xxlarge"] = functools.partial(entry, depths=[1, 1, 2, 1],
                                                                            dims=CONVNEXT_DIMS)


def _reduce_dinov2():
    from dinov2.models import vision_transformer as vits
    from dinov2.layers import MemEffAttention, NestedTensorBlock as Block

    if getattr(vits.vit_giant2, "_shim_reduced", False):
        return

    def vit_giant2(patch_size=16, num_register_tokens=0, **kwargs):  # vit_giant2 with embed_dim/depth/heads reduced
        return vits.DinoVisionTransformer(patch_size=patch_size, embed_dim=DINOV2_WIDTH, depth=2, num_heads=3,
                                          mlp_ratio=4, block_fn=functools.partial(Block, attn_class=MemEffAttention),
                                          num_register_tokens=num_register_tokens, **kwargs)

    vit_giant2._shim_reduced = True
    vits.vit_giant2 = vit_giant2


_LITERALS = [
    ("nn.Linear(768, args.dim)", "nn.Linear(%d, args.dim)" % QFORMER_WIDTH),
    ("nn.Linear(3072 + 1024 + 1536, args.dim)", "nn.Linear(%d + %d + %d, args.dim)" % (CONVNEXT_DIMS[-1], CLIP_WIDTH,
                                                                                        DINOV2_WIDTH)),
    ("== (3072, 8, 8)", "== (%d, 8, 8)" % CONVNEXT_DIMS[-1]),
]


def _reduced_llama_ens5():
    """accessory.model.LLM.llama_ens5 executed from its own source with the three width literals substituted."""
    name = "accessory.model.LLM.llama_ens5"
    if getattr(sys.modules.get(name), "_shim_reduced", False):
        return sys.modules[name]
    importlib.import_module("accessory.model.LLM")
    spec = importlib.util.find_spec(name)
    with open(spec.origin) as f:
        text = f.read()
    for old, new in _LITERALS:
        if text.count(old) != 1:
            raise SystemExit("llama_ens5.py: %r occurs %d times, expected once (another Accessory version?)"
                             % (old, text.count(old)))
        text = text.replace(old, new)
    module = importlib.util.module_from_spec(spec)
    module._shim_reduced = True
    sys.modules[name] = module
    exec(compile(text, spec.origin, "exec"), module.__dict__)
    import accessory.model.LLM as llm
    llm.llama_ens5 = module
    return module


def reduced_sizes():
    """Shims, then the reduced encoder configs; returns the (substituted) llama_ens5 module."""
    install_shims()
    _reduce_blip2()
    _reduce_open_clip()
    _reduce_dinov2()
    return _reduced_llama_ens5()
