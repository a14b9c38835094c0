"""The Azure LLM inference traces 2024 (week-long): a loader for a user's downloaded copy.

The traces are not shipped with hwsim (CC-BY; about a week each, too large for the repository; hosted on Azure
blob storage): `AzureLLMInferenceTrace_code_1week.csv` (code completion) and `AzureLLMInferenceTrace_conv_1week.csv`
(conversation), Azure OpenAI production requests of May 10-19 2024, published with DynamoLLM (Stojkovic et al.,
HPCA 2025, arXiv 2408.00741); listed in github.com/Azure/AzurePublicDataset (AzureLLMInferenceDataset2024.md, whose
links file AzureLLMInferenceDataset2024Links.txt points to the blob storage). Columns: TIMESTAMP (UTC, e.g.
`2024-05-10 00:00:00.009930+00:00`), ContextTokens (prompt), GeneratedTokens (output), one row per request.

Names: `azure-code-2024` and `azure-conv-2024` are looked up as those file names in `$HWSIM_TRACES`, then in
`~/.cache/hwsim/traces`, then in the working directory; a path to the CSV works everywhere a name does. A missing
file is a one-line error saying where to get it. `tests/data/azure-2024-format.csv` is a format fixture (a few rows
written in the 2024 column format to test the parser), not data from the trace.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.errors import HwsimError

FILES = {"azure-code-2024": "AzureLLMInferenceTrace_code_1week.csv",
         "azure-conv-2024": "AzureLLMInferenceTrace_conv_1week.csv"}
URL = "https://azurepublicdatasettraces.blob.core.windows.net/azurellminfererencetrace/"
COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def search_dirs() -> list:
    out = []
    if os.environ.get("HWSIM_TRACES"):
        out.append(Path(os.environ["HWSIM_TRACES"]))
    out += [Path.home() / ".cache" / "hwsim" / "traces", Path.cwd()]
    return out


def locate(name: str) -> Path:
    """The downloaded file of a 2024 trace name, or a one-line error saying how to get it."""
    fname = FILES[name]
    for d in search_dirs():
        if (d / fname).is_file():
            return d / fname
    raise HwsimError(f"trace '{name}' is not shipped (Azure LLM inference trace 2024, CC-BY): download {URL}{fname} "
                     f"into $HWSIM_TRACES or ~/.cache/hwsim/traces, or pass its path")


def resolve(source: str) -> Path:
    if source in FILES:
        return locate(source)
    path = Path(source)
    if not path.is_file():
        raise HwsimError(f"trace '{source}' not found; pass a CSV file in the Azure 2024 format or one of "
                         f"{', '.join(FILES)}")
    return path


_CACHE = {}


def read(source: str) -> pd.DataFrame:
    """One row per request: `arrival_s` (seconds from the first request), `prompt_tokens`, `output_tokens`,
    `timestamp` (UTC). Rows with lengths below 1 are dropped (prompt) or raised to 1 (output), as hwsim's requests
    need; anything not in the 2024 format is refused in one line."""
    path = resolve(source)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if key in _CACHE:
        return _CACHE[key]
    try:
        raw = pd.read_csv(path, usecols=lambda c: c in COLUMNS)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise HwsimError(f"trace {path.name} is not a CSV in the Azure 2024 format ({str(e).splitlines()[0]})")
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise HwsimError(f"trace {path.name} lacks column(s) {', '.join(missing)} of the Azure 2024 format "
                         f"({', '.join(COLUMNS)})")
    if raw.empty:
        raise HwsimError(f"trace {path.name} has no requests")
    stamp = pd.to_datetime(raw["TIMESTAMP"], errors="coerce", utc=True, format="ISO8601")
    prompt = pd.to_numeric(raw["ContextTokens"], errors="coerce")
    output = pd.to_numeric(raw["GeneratedTokens"], errors="coerce")
    bad = stamp.isna() | prompt.isna() | output.isna() | (prompt < 0) | (output < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HwsimError(f"trace {path.name}: row {i + 2} is not a date and two token counts >= 0 "
                         f"({', '.join(str(raw.iloc[i][c]) for c in COLUMNS)})")
    keep = (prompt >= 1).to_numpy()
    stamp, prompt, output = stamp[keep], prompt[keep], output[keep]
    order = np.argsort(stamp.to_numpy(), kind="stable")
    stamp = stamp.iloc[order].reset_index(drop=True)
    t = (stamp - stamp.iloc[0]).dt.total_seconds().to_numpy()
    df = pd.DataFrame({"arrival_s": t, "prompt_tokens": prompt.to_numpy()[order].astype(np.int64),
                       "output_tokens": np.maximum(output.to_numpy()[order].astype(np.int64), 1),
                       "timestamp": stamp})
    _CACHE[key] = df
    return df


def trace_id(source: str) -> str:
    """What identifies the trace's content in cache keys: its name or path, size and modification time."""
    path = resolve(source)
    st = path.stat()
    return f"{path.name}:{st.st_size}:{int(st.st_mtime)}"
