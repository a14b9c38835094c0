"""`--impl hf`: trace the Hugging Face `transformers` implementation of a config.json instead of hwsim's own modules.

`AutoModelForCausalLM.from_config(config)` is built on the meta device (no weights) with the attention and experts
implementations `generate()` uses by default on a recent GPU (`sdpa`; `grouped_mm` for MoE experts), and one
forward step is traced with `workloads.module_trace` as `generate()` runs it:
- prefill: `input_ids` [batch, seq_len] into an empty `DynamicCache` (HF's own cache class: it grows by `torch.cat`),
  logits for the last token only (`logits_to_keep=1`, as `generate()` asks);
- decode: one token per sequence after `seq_len` cached ones, the cache's layers holding that many tokens
  (sliding-window layers their window) when the step starts;
- chunked_prefill: `seq_len` new tokens after `context` cached ones (HF builds an explicit mask there).
So what is costed is HF's real code: its norms (fp32 upcasts), rotary variant, masks, K/V expansion or GQA, the
cache's concatenations and the batched experts.

The decoder layers are found as repeated blocks (traced twice, then replayed), so a step costs about two layers.
Optional: `pip install 'hwsim[hf]'` (transformers); without it every `--impl hf` call fails with one line.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from .errors import HwsimError

INSTALL = "pip install 'hwsim[hf]'"
EXPERTS = "grouped_mm"        # transformers' default for MoE experts where the model supports it
ATTENTION = "sdpa"


def transformers_module():
    try:
        import transformers
    except ImportError as exc:
        if getattr(exc, "name", None) == "transformers":
            raise HwsimError(f"--impl hf needs Hugging Face transformers, which is not installed; {INSTALL}") from None
        raise HwsimError(f"--impl hf needs Hugging Face transformers, which is installed but does not import "
                         f"({_first_line(exc)}); reinstall it: {INSTALL}") from None
    except Exception as exc:     # a broken or mismatched install raises what it raises while importing
        raise HwsimError(f"--impl hf needs Hugging Face transformers, which is installed but does not import "
                         f"({_first_line(exc)}); reinstall it: {INSTALL}") from None
    return transformers


def _first_line(exc: BaseException) -> str:
    """An exception as one short phrase: its type and the start of its text, its lines joined."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@lru_cache(maxsize=1)
def transformers_version() -> str:
    """The installed version, without importing transformers (seconds) when templates are on disk."""
    from importlib import metadata
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return transformers_module().__version__


def _clean(config: dict) -> dict:
    """A config.json as transformers should read it: hwsim's notes and weight quantization removed (hwsim
    applies --quant itself; the step is traced in bf16)."""
    return {k: v for k, v in config.items() if not k.startswith("_hwsim") and k not in ("quantization_config",)}


@lru_cache(maxsize=32)
def hf_config(config_text: str, name: str):
    transformers = transformers_module()
    config = _clean(json.loads(config_text))
    model_type = config.pop("model_type", None)
    if not model_type:
        raise HwsimError(f"model '{name}': its config.json has no model_type, which transformers needs to pick the "
                         f"model's code; add it (e.g. \"model_type\": \"llama\")")
    if model_type not in transformers.CONFIG_MAPPING:
        raise HwsimError(f"model '{name}': transformers {transformers.__version__} does not know model_type "
                         f"{model_type!r}; use --impl hwsim or a newer transformers")
    try:
        return transformers.AutoConfig.for_model(model_type, **config)
    except Exception as exc:     # transformers validates the config
        raise HwsimError(f"model '{name}': transformers rejects its config.json ({_first_line(exc)})") from None


@lru_cache(maxsize=8)
def hf_model(config_text: str, name: str):
    """The meta-device causal LM of a config (cached: it holds no data)."""
    import torch
    transformers = transformers_module()
    config = hf_config(config_text, name)
    try:
        try:
            with torch.device("meta"):
                model = transformers.AutoModelForCausalLM.from_config(
                    config, dtype=torch.bfloat16, attn_implementation=ATTENTION, **_experts_kwargs(transformers, config))
        except ValueError as exc:
            if "scaled_dot_product_attention" not in str(exc):
                raise
            with torch.device("meta"):      # no SDPA path for this architecture: HF runs (and defaults to) eager
                model = transformers.AutoModelForCausalLM.from_config(
                    config, dtype=torch.bfloat16, attn_implementation="eager", **_experts_kwargs(transformers, config))
    except HwsimError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise HwsimError(f"model '{name}': transformers could not build it on the meta device "
                         f"({type(exc).__name__}: {reason})") from None
    model.eval()
    return model


def _experts_kwargs(transformers, config) -> dict:
    """experts_implementation=grouped_mm where the model class takes it (it is transformers' default there)."""
    try:
        cls = transformers.AutoModelForCausalLM._model_mapping[type(config)]
    except (KeyError, AttributeError):
        return {}
    can = getattr(cls, "_can_set_experts_implementation", None)
    try:
        return {"experts_implementation": EXPERTS} if can is not None and can() else {}
    except Exception:
        return {}


def _prime(cache, context: int, step_tokens: int):
    """Make each layer of a DynamicCache hold `context` tokens when the step starts (decode, chunked prefill):
    at its first update it creates them, shaped like the step's keys and values, tagged as KV cache. An empty
    cache's first tensors, HF's own, are tagged too (prefill: HF concatenates onto them)."""
    import torch
    from torch.utils._python_dispatch import _disable_current_modes
    for layer in cache.layers:
        if type(layer).__name__ not in ("DynamicLayer", "DynamicSlidingWindowLayer"):
            raise HwsimError(f"--impl hf: cache layers of type {type(layer).__name__} are not modelled yet; "
                             f"use --impl hwsim")
        window = getattr(layer, "sliding_window", None)
        held = min(context, window - 1) if window else context
        # Past its window a sliding layer keeps `full[:, :, -(window - 1):, :]` of the previous step's cat: a view
        # with gaps between heads, which the next cat reads through torch's non-vectorized path. The previous step
        # is taken as this one's size (a decode step after a decode step).
        dropped = step_tokens if window and context > window - 1 else 0
        original = layer.lazy_initialization

        def lazy(key_states, value_states, layer=layer, held=held, dropped=dropped, original=original):
            original(key_states, value_states)
            for attr, ref in (("keys", key_states), ("values", value_states)):
                if held + dropped:
                    with _disable_current_modes():   # the cache exists before the step: not the step's host work
                        setattr(layer, attr, torch.empty(*ref.shape[:-2], held + dropped, ref.shape[-1],
                                                         dtype=ref.dtype, device=ref.device)[..., dropped:, :])
                # else HF's own empty tensor (5.x: 1-D, which torch's cat skips and so runs its strided kernel)
                t = getattr(layer, attr, None)
                if isinstance(t, torch.Tensor):
                    t.hwsim_class = "kv_cache"
        layer.lazy_initialization = lazy
        if window:
            layer.cumulative_length = context
        elif context:
            plain = layer.get_seq_length
            layer.get_seq_length = lambda layer=layer, plain=plain, c=context: plain() if layer.is_initialized else c


def config_key(spec) -> str:
    """What identifies the HF step's graph: transformers' version and the config (for template cache keys)."""
    return _config_key(spec.source_config)


@lru_cache(maxsize=64)
def _config_key(text: str) -> str:
    return f"hf|{transformers_version()}|{ATTENTION}|{EXPERTS}|" + hashlib.sha1(text.encode()).hexdigest()


@lru_cache(maxsize=256)
def generate_steps(config_text: str, name: str, prompt: int, new_tokens: int) -> tuple:
    """What each of generate()'s decode steps (1..new_tokens - 1) runs: (KV length it finds in its cache, tokens it
    feeds), as the model's own `prepare_inputs_for_generation` decides step by step: normally (prompt, 1),
    (prompt + 1, 1), ...; but a model may drop the cache: Phi-3 does, to switch its rotary factors, when the ids reach
    `original_max_position_embeddings` + 1 while the cache holds no more than that. transformers 5.17 then feeds
    the one new token to a fresh cache, which drops again every later step ((0, 1) from there on); 5.25 feeds the
    whole sequence once ((0, prompt + k)) and keeps the cache after. Asked on the meta model with a cache that
    reports the length generate()'s would hold."""
    import inspect
    import torch
    transformers = transformers_module()
    model = hf_model(config_text, name)
    key = "cache" if "cache" in inspect.signature(model.prepare_inputs_for_generation).parameters \
        else "past_key_values"
    held, out = prompt, []

    class _Held(transformers.DynamicCache):
        def get_seq_length(self, layer_idx: int = 0) -> int:
            return held

    for step in range(1, new_tokens):
        past = _Held(config=model.config)
        ids = torch.zeros((1, prompt + step), dtype=torch.long, device="meta")
        try:
            got = model.prepare_inputs_for_generation(ids, next_sequence_length=1, attention_mask=torch.ones_like(ids),
                                                      use_cache=True, **{key: past})
        except Exception:  # noqa: BLE001 - a model whose preparation needs more than this: assume it keeps the cache
            got = {key: past, "input_ids": ids[:, -1:]}
        fed = int(got["input_ids"].shape[1]) if got.get("input_ids") is not None else 1
        kept = got.get(key) is past
        out.append((held if kept else 0, fed))
        held = held + fed if kept else fed         # a dropped cache restarts from what the step fed
    return tuple(out)


def generate_cached_lengths(config_text: str, name: str, prompt: int, new_tokens: int) -> tuple:
    """The KV length each decode step of generate() finds in its cache (`generate_steps`' first field)."""
    return tuple(held for held, _ in generate_steps(config_text, name, prompt, new_tokens))


def trace_hf(spec, phase: str, batch: int, seq_len: int, context: int):
    """Trace one step of the HF implementation of `spec`'s config.json (phase sizes as `workloads.trace`)."""
    import contextlib
    import inspect
    import warnings

    import torch

    from .step import Phase
    from .module_trace import _static, trace_module

    if not getattr(spec, "source_config", ""):
        raise HwsimError(f"--impl hf needs the model's config.json; '{spec.name}' was given as a ModelSpec only")
    transformers = transformers_module()
    model = hf_model(spec.source_config, spec.name)
    config = model.config
    step = Phase(phase, batch, seq_len, context).step()
    cached, new = step.cached, step.new_tokens
    cache = transformers.DynamicCache(config=config)
    _prime(cache, cached, new)
    ids = torch.zeros((batch, new), dtype=torch.long, device="meta")
    params = inspect.signature(model.forward).parameters
    kwargs = {"input_ids": ids, "use_cache": True}
    kwargs["cache" if "cache" in params else "past_key_values"] = cache
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = 1
    # generate() runs its decode steps inside `_optimize_model_for_decode` (transformers 5.x): on a GPU it switches
    # MoE experts from grouped_mm to batched_mm, which gathers a copy of each routed expert's weights per (token,
    # expert) pair. The meta device is not the CPU, so the model's own switch applies as it would on the GPU.
    switch = getattr(model, "_optimize_model_for_decode", None) if phase == "decode" else None
    with warnings.catch_warnings(), (switch() if switch is not None else contextlib.nullcontext()):
        warnings.filterwarnings("ignore", module="transformers")
        warnings.filterwarnings("ignore", message=".*(deprecated|experts implementation).*")
        graph = trace_module(model, name=spec.name, **kwargs)
    kv_per_token, kv_storage = _kv_bytes(graph, cache, batch)
    linear = _linear_params(model)
    graph.meta.update({
        "model": spec.name, "model_type": config.model_type, "phase": phase, "batch": batch, "seq_len": seq_len,
        "context": cached, "new_tokens": new, "linear_params": linear, "dtype": "bf16", "weight_dtype": "bf16",
        "kv_dtype": "bf16", "kv_bytes_per_token": kv_per_token, "kv_cache_storage_bytes": int(kv_storage),
        "moe": spec.moe is not None, "weight_format": "dense", "traced_from": "hf", "impl": "hf",
        "transformers_version": transformers.__version__, "attn_implementation": config._attn_implementation,
        "weight_storage_bytes": _static(model, "hf_weight_bytes", lambda: sum(
            p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())),
    })
    graph.meta.pop("block_names", None)
    return graph


def _kv_bytes(graph, cache, batch: int):
    """(bytes per cached token over all layers, bytes held after the step): from the cache HF filled; layers that
    were replayed (not run) hold what the first layer of their group does."""
    names = graph.meta.get("block_names", [])
    layer_of, instance_of = {}, {}
    for iid, root in enumerate(names):
        tail = root.rsplit(".", 1)[-1]
        if tail.isdigit():
            layer_of[iid] = int(tail)
            instance_of[int(tail)] = iid
    rep = {iid: members[0] for members in graph.layer_groups.values() for iid in members}
    per_token, held = 0.0, 0.0
    for i, layer in enumerate(cache.layers):
        if not layer.is_initialized and i in instance_of:       # replayed: holds what its group's first layer does
            layer = cache.layers[layer_of.get(rep.get(instance_of[i]), i)]
        if not layer.is_initialized or layer.keys is None:
            continue
        k, v = layer.keys, layer.values
        nbytes = k.numel() * k.element_size() + v.numel() * v.element_size()
        held += nbytes
        tokens = k.shape[-2]
        if tokens:
            per_token += nbytes / (batch * tokens)
    return per_token, held


def _linear_params(model) -> int:
    """Weights of the projections inside the decoder layers (what weight quantization compresses): linear layers'
    matrices and batched expert tensors."""
    from .module_trace import _layout, _leaf_kind
    if getattr(model, "_hwsim_linear_params", None) is not None:
        return model._hwsim_linear_params
    blocks = _layout(model)[1]
    names = [n for n, m in model.named_modules() if id(m) in blocks]
    outer = {n for n in names if not any(n.startswith(o + ".") for o in names)}
    total = 0
    for n, m in model.named_modules():
        if n not in outer:
            continue
        for sub in m.modules():
            if next(sub.children(), None) is None and _leaf_kind(sub) == "matmul" and getattr(sub, "weight", None) is not None:
                total += sub.weight.numel()
            for p in sub.parameters(recurse=False):
                if p.dim() == 3:
                    total += p.numel()
    model._hwsim_linear_params = total
    return total
