"""Derives the request-length samples and traces under workloads/data/requests/ from public files.

Run once by a developer (not at install time); the inputs are public repositories checked out locally
(pass their git directories). What each output is, and how it was drawn:

- lengths-sharegpt.csv.gz: 4,000 rows drawn at random (numpy seed 0, without replacement) from
  github.com/microsoft/sarathi-serve @ 72339db data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv
  (30,731 ShareGPT conversations, Llama-2 tokenizer, total <= 8k tokens; the trace Sarathi-Serve and Vidur use).
- lengths-arxiv.csv.gz: 4,000 rows, same draw, from github.com/microsoft/vidur @ 7d47513
  data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (28,257; Vidur's Arxiv-4K).
- lengths-bwb.csv.gz: 4,000 rows, same draw, from github.com/project-etalon/etalon @ 10102d0
  data/processed_traces/bwb_stats_llama2_tokenizer_filtered_v2.csv (33,768; Vidur's BWB-4K).
- azure-conv-2023.csv.gz / azure-code-2023.csv.gz: the whole Azure LLM inference trace 2023
  (github.com/Azure/AzurePublicDataset @ HEAD data/AzureLLMInferenceTrace_{conv,code}.csv, CC-BY; Splitwise,
  ISCA'24): 19,366 / 8,819 requests, TIMESTAMP turned into seconds after the first request.
- mooncake-conversation.csv.gz: the first 2,000 requests (a contiguous 669 s window, so arrivals and prefix
  reuse stay as recorded) of github.com/kvcache-ai/Mooncake @ HEAD FAST25-release/traces/conversation_trace.jsonl
  (12,031 requests; timestamps in ms; hash_ids are 512-token prefix blocks, kept space-separated).

usage: python3 benchmarks/serving/derive_request_data.py SARATHI_GIT VIDUR_GIT ETALON_GIT AZURE_GIT MOONCAKE_GIT
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[2] / "workloads" / "data" / "requests"


def show(git_dir: str, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", git_dir, "show", f"{rev}:{path}"], capture_output=True, check=True).stdout


def sample_lengths(raw: bytes, name: str, n: int = 4000):
    df = pd.read_csv(io.BytesIO(raw))
    idx = np.sort(np.random.default_rng(0).choice(len(df), size=min(n, len(df)), replace=False))
    out = pd.DataFrame({"prompt_tokens": df["num_prefill_tokens"].to_numpy()[idx],
                        "output_tokens": df["num_decode_tokens"].to_numpy()[idx]})
    out.to_csv(OUT / f"lengths-{name}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print(name, len(df), "->", len(out), out.mean().round(1).to_dict())


def azure(raw: bytes, name: str):
    df = pd.read_csv(io.BytesIO(raw))
    t = pd.to_datetime(df["TIMESTAMP"])
    out = pd.DataFrame({"arrival_s": ((t - t.iloc[0]).dt.total_seconds()).round(6),
                        "prompt_tokens": df["ContextTokens"], "output_tokens": df["GeneratedTokens"]})
    out.to_csv(OUT / f"{name}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print(name, len(out), out.mean().round(2).to_dict())


def main(sarathi, vidur, etalon, azure_git, mooncake):
    OUT.mkdir(parents=True, exist_ok=True)
    sample_lengths(show(sarathi, "72339db", "data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"),
                   "sharegpt")
    sample_lengths(show(vidur, "HEAD", "data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"),
                   "arxiv")
    sample_lengths(show(etalon, "10102d06d17e7763a9779b0483b41abd7fabeb3b",
                        "data/processed_traces/bwb_stats_llama2_tokenizer_filtered_v2.csv"), "bwb")
    azure(show(azure_git, "HEAD", "data/AzureLLMInferenceTrace_conv.csv"), "azure-conv-2023")
    azure(show(azure_git, "HEAD", "data/AzureLLMInferenceTrace_code.csv"), "azure-code-2023")
    rows = [json.loads(line) for line in show(mooncake, "HEAD", "FAST25-release/traces/conversation_trace.jsonl")
            .decode().splitlines()[:2000]]
    out = pd.DataFrame({"arrival_s": [r["timestamp"] / 1000.0 for r in rows],
                        "prompt_tokens": [r["input_length"] for r in rows],
                        "output_tokens": [r["output_length"] for r in rows],
                        "hash_ids": [" ".join(str(h) for h in r["hash_ids"]) for r in rows]})
    out.to_csv(OUT / "mooncake-conversation.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print("mooncake", len(out), out[["prompt_tokens", "output_tokens"]].mean().round(1).to_dict())


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
