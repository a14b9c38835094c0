"""The workload options shared by every command that takes a model and a phase."""
from __future__ import annotations

import re

from workloads.capture import PHASES
from workloads.errors import HwsimError
from workloads.recipe import build_workload, parse_index_list
from workloads.transforms import COMPUTE_DTYPES, KV_DTYPES, SCHEMES

DEFAULTS = {"model": None, "phase": "prefill", "batch": 1, "seq_len": 512, "context": 0, "dtype": "bf16",
            "quant": "none", "kv_dtype": None, "group_size": None, "sparsity": None, "drop_layers": "",
            "drop_attention": "", "shared_prefix": None, "expert_tokens": ""}


def add_workload_args(p, model_required: bool = True):
    d = DEFAULTS
    g = p.add_argument_group("workload")
    g.add_argument("--model", help="preset name (see `hwsim models`) or path to a config.json" +
                   (" (or --module)" if model_required else ""))
    g.add_argument("--module", metavar="FILE.py:FUNC",
                   help="trace any torch module instead of a model: FUNC() returns (module, args) or (module, args, "
                        "kwargs), built on the meta device or small enough for the CPU; one forward call is one step "
                        "(the workload options below apply to --model only)")
    g.add_argument("--impl", default="hwsim", choices=["hwsim", "hf"],
                   help="whose implementation of --model is traced: hwsim's own modules (default) or Hugging Face "
                        "transformers' AutoModelForCausalLM (needs pip install 'hwsim[hf]'); with --cases, the default "
                        "of rows without an impl column")
    g.add_argument("--phase", default=d["phase"], choices=PHASES, help="step to trace (default: prefill)")
    g.add_argument("--batch", type=int, default=d["batch"], help="sequences in the batch (default: 1)")
    g.add_argument("--seq-len", type=int, default=d["seq_len"],
                   help="prefill: prompt length; decode: tokens already cached; chunked_prefill: chunk size (default: 512)")
    g.add_argument("--context", type=int, default=d["context"],
                   help="chunked_prefill: tokens already cached before the chunk")
    g.add_argument("--dtype", default=d["dtype"], choices=COMPUTE_DTYPES, help="compute dtype (default: bf16)")
    g.add_argument("--quant", default=d["quant"], choices=list(SCHEMES), help="weight/activation quantization scheme")
    g.add_argument("--kv-dtype", choices=KV_DTYPES, help="KV-cache dtype (default: the compute dtype)")
    g.add_argument("--group-size", type=int,
                   help="quantization group size of w4a16/w3a16/w4a8 (default 128)")
    g.add_argument("--sparsity", choices=["2:4"], help="structured sparsity of the projection weights")
    g.add_argument("--drop-layers", default=d["drop_layers"], metavar="LIST", help="decoder layers to remove, e.g. 0,30-31")
    g.add_argument("--drop-attention", default=d["drop_attention"], metavar="LIST",
                   help="layers whose attention sublayer is removed")
    g.add_argument("--shared-prefix", type=int, metavar="TOKENS",
                   help="cached prefix shared by the whole batch (decode)")
    g.add_argument("--expert-tokens", default=d["expert_tokens"], metavar="LIST",
                   help="MoE: tokens routed to each expert, comma separated (default: spread evenly)")


def given_workload_options(args) -> list:
    """The workload options set to something other than their default, as --flags (for commands where they
    do not apply; a value equal to the default is harmless either way)."""
    return [f"--{k.replace('_', '-')}" for k, v in DEFAULTS.items() if getattr(args, k, v) != v]


def workload_inputs(args) -> dict:
    if getattr(args, "module", None):
        return {"module": args.module}
    return {**{k: getattr(args, k) for k in DEFAULTS}, "impl": getattr(args, "impl", "hwsim")}


def parse_phases(text: str, option: str = "--phases") -> list:
    """'prefill, decode' -> ['prefill', 'decode']: known phases, each once, at least one."""
    phases = []
    for p in (p.strip().lower() for p in str(text).split(",")):
        if p and p not in PHASES:
            raise HwsimError(f"{option}: unknown phase '{p}'; use one or more of {', '.join(PHASES)}, comma separated")
        if p and p not in phases:
            phases.append(p)
    if not phases:
        raise HwsimError(f"{option} names no phase; e.g. {option} prefill,decode")
    return phases


# workload options that change a --model step; with --module FUNC() decides the step, so they must stay at these
TRANSFORM_DEFAULTS = {"impl": "hwsim", **{k: v for k, v in DEFAULTS.items() if k != "model"}}


def check_model_args(args, command: str):
    """Exactly one of --model and --module; no workload option that --module would ignore (one line)."""
    module = getattr(args, "module", None)
    if module and args.model:
        raise HwsimError(f"{command} takes --model or --module, not both")
    if not module and not args.model:
        raise HwsimError(f"{command} needs --model (a preset or config.json) or --module FILE.py:FUNC")
    if module:
        changed = [k for k, v in TRANSFORM_DEFAULTS.items() if getattr(args, k, v) != v]
        if changed:
            raise HwsimError(f"--{changed[0].replace('_', '-')} applies to --model; with --module, FUNC() builds the "
                             f"inputs and the module's dtype (change them there)")


def workload_from_args(args):
    if getattr(args, "module", None):
        from workloads.module_trace import trace_file
        return trace_file(args.module)
    experts = parse_index_list(args.expert_tokens, "expert token") if args.expert_tokens else None
    return build_workload(
        args.model, args.phase, args.batch, args.seq_len, args.context, args.dtype, args.quant, args.kv_dtype,
        args.group_size, args.sparsity, parse_index_list(args.drop_layers), parse_index_list(args.drop_attention),
        args.shared_prefix, experts, getattr(args, "impl", "hwsim") or "hwsim")


def input_files(args) -> list:
    """(path, option) of the files a command reads through the workload and host options (--model's config.json,
    --module's file, --host's probe file), for sim.outputs.check_distinct: an output must not replace one."""
    import os
    files = []
    model = getattr(args, "model", None)
    if model and os.path.isdir(model):
        files.append((os.path.join(model, "config.json"), "--model"))
    elif model and os.path.isfile(model):
        files.append((model, "--model"))
    module = getattr(args, "module", None)
    if module:
        files.append((module.rsplit(":", 1)[0] if ":" in module else module, "--module"))
    host = getattr(args, "host", None)
    if host and os.path.isfile(host):
        files.append((host, "--host"))
    return files


def add_host_args(p):
    g = p.add_argument_group("host (eager-launch and hf-generate profiles)")
    g.add_argument("--host", metavar="NAME|FILE",
                   help="the host CPU issuing the kernels: a host preset (see `hwsim hosts`) or a file from "
                        "`hwsim probe-host` (default: the GPU preset's host)")
    g.add_argument("--host-speed", type=float, metavar="X",
                   help="scale the host's speed (2.0: every host cost halved), e.g. to ask what a faster CPU buys")


def host_options(args, profiles=None) -> dict:
    """host / host_speed for predict and simulate; one line if given where no profile has a host on its path.
    `profiles`: the stacks in use where they are several (a cases file's profile column), default --profile."""
    from hw_models.host import check_speed, load_host
    from hw_models.stacks import STACKS, stack
    host, speed = getattr(args, "host", None), getattr(args, "host_speed", None)
    used = [args.profile] if profiles is None else [p for p in profiles if p in STACKS]
    if (host is not None or speed is not None) and not any(stack(p).host_queue for p in used):
        raise HwsimError(f"--host/--host-speed apply to host-issued profiles (eager-launch, hf-generate); profile "
                         f"'{args.profile}' replays CUDA graphs")
    if speed is not None:
        check_speed(speed, "--host-speed")
    if host is not None:
        load_host(host)          # a missing or malformed host file is the command's error, before any work
    return {"host": host, "host_speed": speed}


_DTYPE_ADVICE = re.compile(r"; use (?:--dtype (\w+)|--quant )[^;]*$")
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def module_advice(message: str, args) -> str:
    """A device's 'use --dtype X' advice, where --module is traced: --dtype/--quant apply to --model only, so the
    advice is to build the module in another dtype in FUNC()."""
    found = _DTYPE_ADVICE.search(message) if getattr(args, "module", None) else None
    if not found:
        return message
    dtype = _TORCH_DTYPES.get(found.group(1) or "")
    example = f" (e.g. module.to(torch.{dtype}) and inputs to match)" if dtype else ""
    return (message[:found.start()] + "; with --module the dtype is the module's own: build the module and its "
            f"inputs in a dtype the device runs in FUNC(){example}")
