"""Public entry point: model preset or config.json + phase -> `OpGraph`."""
from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from typing import Optional, Sequence

from .errors import ContextLengthWarning, HwsimError, UnknownModelTypeWarning
from .families import spec_from_config, supported_families
from .graph import OpGraph
from .step import MAX_SIZE, PHASES, Phase, Step  # noqa: F401  (Phase, PHASES, MAX_SIZE: also imported from here)
from .zoo import load_config

IMPLS = ("hwsim", "hf")


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise HwsimError(f"unknown implementation '{impl}'; use hwsim (hwsim's own modules) or hf (Hugging Face "
                         f"transformers)")
    return impl


def load_spec(model: str, impl: str = "hwsim"):
    """The ModelSpec of a preset or config.json, carrying the config it was read from. With impl="hf" a config
    whose model_type hwsim's families do not read still gets a spec (its sizes, from transformers' reading)."""
    config, name = load_config(model)
    return _spec_cached(json.dumps(config, sort_keys=True), name, check_impl(impl))


@lru_cache(maxsize=64)
def _spec_cached(config_text: str, name: str, impl: str = "hwsim"):
    from dataclasses import replace

    from .errors import ConfigError, UnsupportedModelError
    config = json.loads(config_text)
    try:
        spec = spec_from_config(config, name)
    except (UnsupportedModelError, ConfigError):
        if impl != "hf":
            raise
        return _hf_only_spec(config_text, name)
    model_type = config.get("model_type")
    if impl == "hwsim" and model_type not in supported_families():      # once per config: this function is cached
        warnings.warn(UnknownModelTypeWarning(_unknown_type_message(model_type, name)), stacklevel=3)
    return replace(spec, source_config=config_text)


def _unknown_type_message(model_type, name: str) -> str:
    what = f"model_type '{model_type}'" if model_type is not None else "no model_type"
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
        known = model_type in CONFIG_MAPPING_NAMES
    except Exception:                  # transformers missing or broken: no advice about it
        known = False
    fix = (f"use --impl hf (impl='hf') for transformers' own {model_type} model" if known else
           "check that its layers are Llama-style (RoPE, RMSNorm, gated MLP)")
    return (f"model '{name}': {what} has no hwsim family, so it is built as a Llama-style decoder from its "
            f"standard keys; {fix}")


def _hf_only_spec(config_text: str, name: str):
    """Sizes of a model only transformers can build (for memory, parallelism checks and reports)."""
    from .hf import hf_config
    from .spec import LayerKind, ModelSpec, MoESpec
    cfg = hf_config(config_text, name)
    cfg = cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg
    hidden, layers, heads = (getattr(cfg, k, None) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads"))
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads)):
        raise HwsimError(f"model '{name}': its config has no hidden_size/num_hidden_layers/num_attention_heads")
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    experts = next((getattr(cfg, k) for k in ("num_local_experts", "num_experts", "n_routed_experts")
                    if isinstance(getattr(cfg, k, None), int) and getattr(cfg, k) > 0), None)
    top_k = getattr(cfg, "num_experts_per_tok", None)
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    window = getattr(cfg, "sliding_window", None) if isinstance(getattr(cfg, "sliding_window", None), int) else 0
    moe = MoESpec(experts, top_k, getattr(cfg, "moe_intermediate_size", None) or inter) \
        if experts and isinstance(top_k, int) and 0 < top_k <= experts else None
    return ModelSpec(name=name, model_type=cfg.model_type, hidden=hidden, layers=layers, vocab=cfg.vocab_size,
                     max_positions=getattr(cfg, "max_position_embeddings", None) or 1 << 20, heads=heads, kv_heads=kv,
                     head_dim=getattr(cfg, "head_dim", None) or hidden // heads, intermediate=inter, position="learned",
                     moe=moe, layer_kinds=(LayerKind(moe=moe is not None, window=window or 0),) * layers, source_config=config_text)


@lru_cache(maxsize=16)
def build_module(spec):
    """The meta-device module of a spec (cached: it holds no data, so it can be reused).
    torch is imported here, not at package import, so commands served from templates start fast."""
    from .modules import CausalLM
    return CausalLM(spec)


def _check_experts(spec, step: Step, expert_tokens):
    if expert_tokens is None:
        return None
    if spec.moe is None:
        raise HwsimError(f"model '{spec.name}' has no experts; drop the per-expert token counts")
    counts = tuple(int(n) for n in expert_tokens)
    tokens = step.batch * step.new_tokens
    if len(counts) != spec.moe.num_experts or any(n < 0 for n in counts) or sum(counts) != tokens * spec.moe.top_k:
        raise HwsimError(
            f"expert token counts must be {spec.moe.num_experts} non-negative integers summing to "
            f"tokens x top_k = {tokens * spec.moe.top_k}")
    return counts


def check_positions(spec, positions: int, warn: bool = True) -> None:
    """A context beyond max_position_embeddings: refused where positions are a learned table (no row to look
    up), else a warning (RoPE/ALiBi models run longer contexts with RoPE scaling, and serving engines allow it)."""
    if positions <= spec.max_positions:
        return
    if spec.position == "learned":
        raise HwsimError(
            f"{positions} positions exceed the maximum of {spec.max_positions} for model '{spec.name}' (a learned "
            f"position table has no rows beyond it); use a shorter --seq-len/--context")
    if warn:
        warnings.warn(ContextLengthWarning(
            f"{positions} positions exceed max_position_embeddings = {spec.max_positions} of model '{spec.name}'; "
            f"simulated as is (RoPE scaling / the engine's max_model_len must allow it)"), stacklevel=3)


def trace(model, phase: str = "prefill", batch: int = 1, seq_len: int = 128, context: int = 0,
          expert_tokens: Optional[Sequence[int]] = None, use_template: bool = True, impl: str = "hwsim") -> OpGraph:
    """Trace one forward step of `model` (preset name, config.json path or ModelSpec).

    Dense models are served from a graph template (exact polynomials fitted to real traces, kept on disk)
    when one applies; otherwise, and always with use_template=False, the module is traced directly.
    impl="hf" traces the Hugging Face transformers implementation of the config instead (workloads/hf.py).
    """
    check_impl(impl)
    spec = load_spec(model, impl) if isinstance(model, str) else model
    if impl == "hf" and expert_tokens is not None:
        raise HwsimError("--expert-tokens applies to --impl hwsim; the Hugging Face experts run batched as traced")
    ph = Phase(phase, batch, seq_len, context)
    step = ph.step()
    _check_experts(spec, step, expert_tokens)     # refuse bad input before warning about anything else
    check_positions(spec, ph.positions)
    windows = [k.window for k in spec.layer_kinds if k.window]
    if use_template and expert_tokens is None and spec.moe is None and \
            (not windows or ph.positions < window_limit(min(windows), impl) and min(windows) >= _template_reach()) and \
            os.environ.get("HWSIM_TEMPLATES", "1") != "0":
        # hwsim's modules: build the template at once (a few traces of small modules); HF's: trace the first step
        # directly (one trace, well under the template's 7-12) and build the template when a second one comes
        build = impl != "hf" or _REQUESTS.setdefault((id(spec), ph.kind), [0]) [0] > 0
        tpl = _template(spec, ph.kind, impl, build=build)
        if impl == "hf":
            _REQUESTS[(id(spec), ph.kind)][0] += 1
        if tpl is not None and tpl.covers(step.batch, step.new_tokens):
            graph = tpl.instantiate(step.batch, step.new_tokens, step.cached)
            graph.spec = spec
            return graph
    if impl == "hf":
        graph = _trace_hf(spec, ph.kind, ph.batch, ph.seq_len, ph.context)
    else:
        graph = _trace_direct(spec, ph.kind, ph.batch, ph.seq_len, ph.context, expert_tokens)
    graph.spec = spec
    return graph


def window_limit(window: int, impl: str) -> int:
    """The first step length (positions) a template fitted below a sliding window no longer describes: hwsim's
    modules attend causally up to the window itself; HF's mask functions skip the mask only while the keys are
    fewer than the window (transformers' `_ignore_causal_mask_sdpa`: kv_length < local_attention_size), and from
    there pass SDPA an explicit boolean mask (another kernel, and every query-key pair)."""
    return window if impl == "hf" else window + 1


def _trace_hf(spec, phase, batch, seq_len, context) -> OpGraph:
    from .hf import trace_hf
    return trace_hf(spec, phase, batch, seq_len, context)


_TEMPLATES: dict = {}


def _template_reach() -> int:
    """Templates are fitted on steps of up to this many positions; a sliding window must cover them."""
    from .template import MAX_POSITIONS
    return MAX_POSITIONS


_REQUESTS: dict = {}


def _template(spec, phase, impl: str = "hwsim", build: bool = True):
    """The graph template of a model and phase: from memory, from disk, or (`build`) fitted now and saved."""
    from . import template
    from .version import __version__
    if impl == "hf":
        from .hf import config_key
        ident = config_key(spec)          # transformers' version and the config text

        def direct(sp, ph, b, s, c):
            return _trace_hf(spec, ph, b, s, c)
    else:
        ident = spec

        def direct(sp, ph, b, s, c):
            return _trace_direct(sp, ph, b, s, c, None)
    k = (template.key(ident, phase, __version__))
    if k not in _TEMPLATES:
        tpl = template.load(ident, phase, __version__)
        if tpl is None and not build:
            return None
        if tpl is None:
            try:
                data = template.build(spec, phase, direct)
            except HwsimError:
                data = None
            if data is not None:
                template.save(ident, phase, __version__, data)
                tpl = template.Template(data)
        _TEMPLATES[k] = tpl
    return _TEMPLATES[k]


_MOE_TEMPLATES: dict = {}


def moe_template(spec, phase):
    """The MoE class template (workloads/moe_template.py) of a MoE model and phase: from memory, from disk or
    fitted now (a dozen traces) and saved; None where the step is not polynomial (e.g. sliding windows)."""
    from . import moe_template as mt
    from . import template
    from .version import __version__
    if spec.moe is None or spec.moe.num_experts < 2 or phase not in template.MONOMIALS:
        return None
    k = template.key(spec, phase, __version__, "moe")
    if k not in _MOE_TEMPLATES:
        tpl = template.load(spec, phase, __version__, "moe", make=mt.MoETemplate)
        if tpl is None:
            def direct(sp, ph, b, s, c, tokens):
                return _trace_direct(sp, ph, b, s, c, tokens, check_experts=False)
            try:
                data = mt.build(spec, phase, direct)
            except HwsimError:
                data = None
            if data is not None:
                template.save(spec, phase, __version__, data, "moe")
                tpl = mt.MoETemplate(data)
        _MOE_TEMPLATES[k] = tpl
    return _MOE_TEMPLATES[k]


def _trace_direct(spec, phase, batch, seq_len, context, expert_tokens, check_experts: bool = True) -> OpGraph:
    """`check_experts=False` takes any per-expert token counts (MoE class templates trace steps in which just two
    experts run, whatever the token count: workloads/moe_template.py)."""
    ph = Phase(phase, batch, seq_len, context)
    check_positions(spec, ph.positions, warn=False)
    step = ph.step()
    experts = _check_experts(spec, step, expert_tokens) if check_experts else tuple(expert_tokens)
    step = Step(step.phase, step.batch, step.new_tokens, step.cached, experts)
    from .tracer import records_to_graph, trace_module
    try:
        module = build_module(spec)
        records = trace_module(module, step)
    except (RuntimeError, OverflowError, MemoryError, ValueError, TypeError, IndexError) as exc:   # sizes torch cannot index
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HwsimError(f"model '{spec.name}' could not be traced ({reason}); check its sizes") from None
    params = module.parameter_count()
    layer_params, layer_linear = module.layer_parameter_counts()
    kv_storage = sum(step.kv_slots(kind.window) for kind in spec.layer_kinds) * step.batch * \
        spec.kv_bytes_per_token(2.0) / spec.layers
    meta = {
        "model": spec.name, "model_type": spec.model_type, "phase": ph.kind, "batch": ph.batch,
        "seq_len": ph.seq_len, "context": step.cached, "new_tokens": step.new_tokens,
        "params": params, "linear_params": module.linear_weight_count(), "dtype": "bf16", "weight_dtype": "bf16",
        "kv_dtype": "bf16", "weight_storage_bytes": params * 2, "kv_bytes_per_token": spec.kv_bytes_per_token(2.0),
        "kv_cache_storage_bytes": int(kv_storage), "shared_input_norm": spec.shared_input_norm,
        "parallel_residual": spec.parallel_residual, "moe": spec.moe is not None, "weight_format": spec.weight_format,
        "transforms": [],
        # per decoder layer, in order: what dropping that layer removes from the weights held in memory
        "layer_params": list(layer_params), "layer_linear_params": list(layer_linear),
    }
    return records_to_graph(records, module.layer_indices(), meta)
