"""`hwsim models`: the model presets with their size and shape."""
from __future__ import annotations


from workloads import load_spec
from workloads.errors import HwsimError
from workloads.capture import build_module
from workloads.zoo import load_config, preset_names

from .output import command, document, emit_json, human, table

EXAMPLES = """examples:
  hwsim models
  hwsim models --family llama
  hwsim models --json
"""


def register(sub):
    p = command(sub, "models", "list the model presets (Hugging Face config.json files)",
                "List the built-in model presets with parameter counts and shapes.", EXAMPLES)
    p.add_argument("--family", help="only presets of this model_type (e.g. llama, mixtral, gpt2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def describe(name: str) -> dict:
    spec = load_spec(name)
    config, _ = load_config(name)
    module = build_module(spec)
    return {
        "name": name, "family": spec.model_type, "params": module.parameter_count(),
        "layers": spec.layers, "hidden": spec.hidden, "heads": spec.heads, "kv_heads": spec.kv_heads,
        "experts": f"{spec.moe.num_experts}x top-{spec.moe.top_k}" if spec.moe else "-",
        "attention": "MLA" if spec.mla else ("MHA" if spec.kv_heads == spec.heads else ("MQA" if spec.kv_heads == 1 else "GQA")),
        "max_context": spec.max_positions, "kv_bytes_per_token": spec.kv_bytes_per_token(2.0),
        "source": config.get("_hwsim_source", ""),
    }


def run(args):
    names = preset_names()
    if args.family:
        families = {name: load_spec(name).model_type for name in names}
        wanted = args.family.strip().lower()
        if wanted not in families.values():
            raise HwsimError(f"no model preset of family '{args.family}'; the families are "
                             f"{', '.join(sorted(set(families.values())))}")
        names = [n for n in names if families[n] == wanted]
    rows = [describe(name) for name in names]
    if args.json:
        emit_json(document("models", {"family": args.family}, models=rows))
        return 0
    print(table(rows, [
        ("model", "name", "<"), ("family", "family", "<"), ("params", lambda r: human(r["params"]), ">"),
        ("layers", "layers", ">"), ("hidden", "hidden", ">"), ("heads", "heads", ">"), ("kv", "kv_heads", ">"),
        ("attn", "attention", "<"), ("experts", "experts", "<"), ("context", "max_context", ">"),
        ("KV/token", lambda r: human(r["kv_bytes_per_token"], "B"), ">"),
    ]))
    print(f"\n{len(rows)} presets; --model also takes a path to any Hugging Face config.json")
    return 0
