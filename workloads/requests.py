"""Serving requests: arrival processes, prompt/output lengths, trace readers and shared prefixes.

A request set is a pandas DataFrame, one row per request, sorted by arrival:

| column | meaning |
|---|---|
| `arrival_s` | arrival time in seconds (for a follow-up turn: the think time after its parent finishes) |
| `prompt_tokens` | prompt length, shared prefix included |
| `output_tokens` | tokens to generate (at least 1) |
| `prefix` | shared prefix as a tuple of `(key, tokens)` segments (empty: nothing shared). A segment's key names its content *and everything before it* (a path in a radix tree), so two requests share the KV of a segment iff both hold the same key at the same place |
| `parent` | index of the request whose completion this one waits for (multi-turn sessions), -1 if none |
| `cache_key` | optional: the key under which this request's own tokens (prompt after its prefix, and its output) stay cached when it completes, so a later turn can reuse them as its prefix |

Nothing here knows hardware: the serving simulator (`sim/serving/`) consumes these tables.

Length sources (`lengths(source, n, rng)`):
- datasets, each a random sample of 4,000 (prompt, output) pairs of a public file, drawn as pairs so the
  correlation of the two lengths is kept (`benchmarks/serving/derive_request_data.py` says how):
  `sharegpt` (Sarathi-Serve/Vidur's ShareGPT conversations, Llama-2 tokenizer, <= 8k tokens: mean 2,376 / 446),
  `arxiv` (Vidur's Arxiv-4K summarisation: 2,552 / 304), `bwb` (Vidur's Bilingual-Web-Book: 1,061 / 1,602),
  `azure-conv` / `azure-code` (the Azure LLM inference trace 2023 lengths: 1,155 / 211 and 2,048 / 28),
  `mooncake-conv` (Kimi conversation trace: 13,721 / 352);
- quantile tables of `workloads/request_lengths.py` (the NeuPIMs authors' per-turn statistics):
  `sharegpt-turns` (80 / 296) and `alpaca` (12 / 56);
- `lmsys-chat`: LMSYS-Chat-1M conversations as Vidur uses them, lognormal with mean 462 / 210 and CV 1.42 / 0.86
  (moments of Vidur's lmsys_chat_1m_conversation_stats_llama2_tokenizer.csv as summarised by a third party; the
  file itself is over the size this workspace can read, so the shape is an assumption);
- distributions: `fixed:I:O`, `uniform:I_LO-I_HI:O_LO-O_HI`, `lognormal:I_MEAN:I_CV:O_MEAN:O_CV`,
  `exponential:I_MEAN:O_MEAN` (lengths rounded, at least 1).

Traces (`read_trace(path or name)`): CSV, Parquet or JSONL with a prompt-length column (`prompt_tokens`,
`ContextTokens` (Azure), `input_length` (Mooncake), `num_prefill_tokens` (Vidur/Sarathi)) and an output-length
column (`output_tokens`, `GeneratedTokens`, `output_length`, `num_decode_tokens`), optionally a time column
(`arrival_s`, `TIMESTAMP` as a date, `timestamp` in ms (Mooncake), `arrived_at` in s) and Mooncake's
`hash_ids` (512-token prefix blocks, which become the shared prefix). Built-in: `azure-conv-2023`,
`azure-code-2023` (whole traces), `mooncake-conv` (its first 2,000 requests).
"""
from __future__ import annotations

import math
import numbers

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import HwsimError, HwsimWarning

DATA = Path(__file__).with_name("data") / "requests"
SAMPLED = {"sharegpt": "lengths-sharegpt.csv.gz", "arxiv": "lengths-arxiv.csv.gz", "bwb": "lengths-bwb.csv.gz",
           "azure-conv": "azure-conv-2023.csv.gz", "azure-code": "azure-code-2023.csv.gz",
           "mooncake-conv": "mooncake-conversation.csv.gz"}
TRACES = {"azure-conv-2023": "azure-conv-2023.csv.gz", "azure-code-2023": "azure-code-2023.csv.gz",
          "mooncake-conv": "mooncake-conversation.csv.gz"}
WEEK_TRACES = ("azure-code-2024", "azure-conv-2024")     # not shipped; workloads/azure2024.py finds a downloaded copy
QUANTILE_TABLES = ("sharegpt-turns", "alpaca")
LOGNORMAL = {"lmsys-chat": (462.0, 1.42, 210.0, 0.86)}
MOONCAKE_BLOCK = 512          # tokens per hash_id block (Mooncake FAST'25 trace README)
COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "prefix", "parent")


def dataset_names() -> list:
    return sorted(list(SAMPLED) + list(QUANTILE_TABLES) + list(LOGNORMAL))


# --- arrivals -------------------------------------------------------------------------------------
def arrivals(kind: str, n: int, rate: float, rng: np.random.Generator, cv: float = 1.0, start: float = 0.0):
    """Arrival times of `n` requests at `rate` per second: `poisson` (exponential gaps), `gamma` (gaps of
    coefficient of variation `cv`: > 1 bursty, < 1 smoother), `fixed` (evenly spaced), `burst` (all at `start`)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise HwsimError(f"the number of requests must be a positive whole number, got {n!r}")
    if kind == "burst":
        return np.full(n, float(start))
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not rate > 0 or not np.isfinite(rate):
        raise HwsimError(f"the request rate must be a positive number of requests per second, got {rate!r}")
    if kind == "poisson":
        gaps = rng.exponential(1.0 / rate, n)
    elif kind == "gamma":
        if isinstance(cv, bool) or not isinstance(cv, numbers.Real) or not 0 < cv < float("inf"):
            raise HwsimError(f"the arrival CV must be a positive finite number, got {cv!r}")
        shape = 1.0 / cv ** 2
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    elif kind == "fixed":
        gaps = np.full(n, 1.0 / rate)
    else:
        raise HwsimError(f"unknown arrival process '{kind}'; use poisson, gamma, fixed or burst")
    gaps[0] = 0.0
    return start + np.cumsum(gaps)


# --- lengths ----------------------------------------------------------------------------------------
def _read_sample(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / SAMPLED[name], usecols=["prompt_tokens", "output_tokens"])


def _numbers(parts, count, what):
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != count or not all(math.isfinite(v) and v > 0 for v in vals):     # NaN passes `v <= 0`
        raise HwsimError(f"bad length distribution '{what}'; e.g. fixed:512:128, uniform:100-900:50-300, "
                         f"lognormal:1000:1.0:200:0.8, exponential:1000:200")
    return vals


def _range(text, what):
    lo, sep, hi = text.partition("-")
    vals = _numbers([lo, hi] if sep else [], 2, what)
    if vals[1] < vals[0]:
        raise HwsimError(f"bad range '{text}' in '{what}': the upper end must not be below the lower")
    return vals


def _lognormal(mean, cv, n, rng):
    sigma2 = np.log1p(cv ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)


def lengths(source: str, n: int, rng: np.random.Generator, max_total: int = None) -> tuple:
    """(prompt lengths, output lengths) of `n` requests as integer arrays (prompt >= 1, output >= 1).
    With `max_total`, pairs whose prompt + output exceed it are redrawn (datasets) or clipped (random
    distributions); fixed lengths past it are refused (clipping would serve other lengths than asked for)."""
    name = source.strip().lower()
    head, _, rest = name.partition(":")
    if name in SAMPLED:
        table = _read_sample(name)
        ok = table[(table.prompt_tokens >= 1) & (table.output_tokens >= 1)]
        if max_total:
            ok = ok[ok.prompt_tokens + ok.output_tokens <= max_total]
            if ok.empty:
                raise HwsimError(f"no request of dataset '{source}' fits {max_total} tokens; raise the model's context")
        pick = rng.integers(0, len(ok), n)
        return ok.prompt_tokens.to_numpy()[pick].astype(np.int64), ok.output_tokens.to_numpy()[pick].astype(np.int64)
    if name in QUANTILE_TABLES:
        from .request_lengths import sample_requests
        p, o = sample_requests("sharegpt" if name == "sharegpt-turns" else name, n, rng)
        p = np.maximum(p, 1)
    elif name in LOGNORMAL:
        mi, ci, mo, co = LOGNORMAL[name]
        p, o = _lognormal(mi, ci, n, rng), _lognormal(mo, co, n, rng)
    elif head == "fixed":
        a, b = _numbers(rest.split(":"), 2, source)
        if max_total and max(round(a), 1) + max(round(b), 1) > max_total:   # clipped, 100000:5 served as 2047:1
            raise HwsimError(f"fixed lengths of {a:g} prompt + {b:g} output tokens exceed the {max_total:,}-token "
                             f"context a request may use; give shorter lengths or a longer context")
        p, o = np.full(n, a), np.full(n, b)
    elif head == "uniform":
        parts = rest.split(":")
        if len(parts) != 2:
            _numbers([], 1, source)
        (a0, a1), (b0, b1) = _range(parts[0], source), _range(parts[1], source)
        p, o = rng.uniform(a0, a1 + 1, n), rng.uniform(b0, b1 + 1, n)
        p, o = np.floor(p), np.floor(o)
    elif head == "lognormal":
        mi, ci, mo, co = _numbers(rest.split(":"), 4, source)
        p, o = _lognormal(mi, ci, n, rng), _lognormal(mo, co, n, rng)
    elif head == "exponential":
        mi, mo = _numbers(rest.split(":"), 2, source)
        p, o = rng.exponential(mi, n), rng.exponential(mo, n)
    else:
        raise HwsimError(f"unknown length source '{source}'; use a dataset ({', '.join(dataset_names())}) or a "
                         f"distribution (fixed:I:O, uniform:..., lognormal:..., exponential:...)")
    p = np.maximum(np.rint(p), 1).astype(np.int64)
    o = np.maximum(np.rint(o), 1).astype(np.int64)
    if max_total:
        p = np.minimum(p, max_total - 1)
        o = np.minimum(o, max_total - p)
    return p, o


def synthetic(n: int, rate: float, source: str = "sharegpt", arrival: str = "poisson", cv: float = 1.0,
              seed: int = 0, max_total: int = None) -> pd.DataFrame:
    """`n` requests with lengths from `source` arriving by `arrival` at `rate` per second."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise HwsimError(f"the seed must be a whole number >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    t = arrivals(arrival, n, rate, rng, cv)
    p, o = lengths(source, n, rng, max_total)
    return frame(t, p, o)


def frame(arrival_s, prompt_tokens, output_tokens, prefix=None, parent=None) -> pd.DataFrame:
    n = len(arrival_s)
    df = pd.DataFrame({"arrival_s": np.asarray(arrival_s, dtype=float),
                       "prompt_tokens": np.asarray(prompt_tokens, dtype=np.int64),
                       "output_tokens": np.asarray(output_tokens, dtype=np.int64)})
    df["prefix"] = pd.Series([()] * n if prefix is None else list(prefix), dtype=object)
    df["parent"] = np.full(n, -1, dtype=np.int64) if parent is None else np.asarray(parent, dtype=np.int64)
    return df


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check a request table (one-line errors) and return it sorted by arrival, parents first."""
    if not isinstance(df, pd.DataFrame):
        raise HwsimError(f"requests must be a request table (a pandas DataFrame: workloads.requests.synthetic, "
                         f"frame or a read trace), got {type(df).__name__}")
    missing = [c for c in ("arrival_s", "prompt_tokens", "output_tokens") if c not in df.columns]
    if missing:
        raise HwsimError(f"request table lacks column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise HwsimError("the request table is empty")
    df = df.copy()
    if "prefix" not in df.columns:
        df["prefix"] = pd.Series([()] * len(df), dtype=object, index=df.index)
    if "parent" not in df.columns:
        df["parent"] = -1
    for col in ("prompt_tokens", "output_tokens"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any() or (vals < 1).any() or (vals != np.floor(vals)).any():
            bad = (vals.isna() | (vals < 1) | (vals != np.floor(vals))).to_numpy()
            raise HwsimError(f"column {col} must hold whole numbers >= 1 (request {int(np.argmax(bad)) + 1} holds "
                             f"{df[col].iloc[int(np.argmax(bad))]!r})")
        df[col] = vals.astype(np.int64)
    t = pd.to_numeric(df["arrival_s"], errors="coerce")
    if t.isna().any() or not np.isfinite(t).all() or (t < 0).any():
        raise HwsimError("column arrival_s must hold finite times >= 0")
    df["arrival_s"] = t.astype(float)
    shared = np.array([sum(int(s) for _, s in segs) if segs else 0 for segs in df["prefix"].tolist()], dtype=np.int64)
    over = shared > df["prompt_tokens"].to_numpy()
    if over.any():
        raise HwsimError(f"request {int(np.argmax(over))}: its shared prefix is longer than its prompt")
    parent = df["parent"].to_numpy()
    if ((parent >= len(df)) | (parent == np.arange(len(df)))).any():
        raise HwsimError("column parent must name an earlier request (or -1)")
    if (parent >= 0).any():
        return df.reset_index(drop=True)        # sessions keep their order: parents are referenced by index
    return df.sort_values("arrival_s", kind="stable").reset_index(drop=True)


# --- traces -------------------------------------------------------------------------------------------
PROMPT_COLS = ("prompt_tokens", "ContextTokens", "input_length", "num_prefill_tokens", "input_tokens", "prompt_len")
OUTPUT_COLS = ("output_tokens", "GeneratedTokens", "output_length", "num_decode_tokens", "output_len")


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".jsonl.gz", ".json")):
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except (OSError, ValueError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HwsimError(f"cannot read trace {path}: {reason}") from None


def read_trace(source: str, limit: int = None, time_scale: float = 1.0) -> pd.DataFrame:
    """A trace file (or built-in trace name) as a request table. `time_scale` stretches arrivals
    (0.5 replays twice as fast); `limit` keeps the first requests."""
    if source in TRACES:
        path = DATA / TRACES[source]
    elif source in WEEK_TRACES:                 # not shipped: the user's downloaded copy (workloads/azure2024.py)
        from workloads import azure2024
        raw = azure2024.read(source)
        raw = raw.iloc[:limit] if limit else raw
        return validate(frame(raw.arrival_s.to_numpy() * time_scale, raw.prompt_tokens.to_numpy(),
                              raw.output_tokens.to_numpy()))
    else:
        path = Path(source)
        if not path.is_file():
            raise HwsimError(f"trace '{source}' not found; pass a CSV/Parquet/JSONL file or one of "
                             f"{', '.join(list(TRACES) + list(WEEK_TRACES))}")
    raw = _read_table(path)
    if list(raw.columns) == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:     # the Azure traces' raw format
        from workloads import azure2024
        az = azure2024.read(str(path))
        az = az.iloc[:limit] if limit else az
        return validate(frame(az.arrival_s.to_numpy() * time_scale, az.prompt_tokens.to_numpy(),
                              az.output_tokens.to_numpy()))
    pcol = next((c for c in PROMPT_COLS if c in raw.columns), None)
    ocol = next((c for c in OUTPUT_COLS if c in raw.columns), None)
    if pcol is None or ocol is None:
        raise HwsimError(f"trace {path.name} lacks a {'prompt' if pcol is None else 'output'}-length column; "
                         f"name it {PROMPT_COLS[0] if pcol is None else OUTPUT_COLS[0]} (columns found: "
                         f"{', '.join(map(str, raw.columns[:8]))})")
    if limit:
        raw = raw.iloc[:limit]
    if len(raw) == 0:
        raise HwsimError(f"trace {path.name} holds no requests (a header and no rows); give a trace with rows")
    why = {}                                   # row index -> why it cannot be served (the first reason found)
    prompts, outputs = (_token_counts(raw[c], c, why) for c in (pcol, ocol))
    if "arrival_s" in raw.columns:
        t = pd.to_numeric(raw["arrival_s"], errors="coerce").to_numpy(dtype=float)
    elif "arrived_at" in raw.columns:
        t = pd.to_numeric(raw["arrived_at"], errors="coerce").to_numpy(dtype=float)
    elif "TIMESTAMP" in raw.columns:
        stamp = pd.to_datetime(raw["TIMESTAMP"], errors="coerce")
        if stamp.isna().any():           # ISO dates with and without fractional seconds (the Azure 2024 traces)
            stamp = pd.to_datetime(raw["TIMESTAMP"], errors="coerce", format="ISO8601")
        if stamp.isna().any():
            raise HwsimError(f"trace {path.name}: column TIMESTAMP holds values that are not dates")
        t = (stamp - stamp.min()).dt.total_seconds().to_numpy()
    elif "timestamp" in raw.columns:
        t = pd.to_numeric(raw["timestamp"], errors="coerce").to_numpy(dtype=float) / 1000.0
    else:
        raise HwsimError(f"trace {path.name} has no time column (arrival_s, TIMESTAMP, timestamp or arrived_at); "
                         f"give a --rate to draw arrivals instead")
    for i in np.flatnonzero(~np.isfinite(t)):
        why.setdefault(int(i), "its time is not a number")
    # a bad row is left out, with its reason; the others are served (one bad row used to stop the whole replay)
    keep = np.ones(len(raw), dtype=bool)
    keep[list(why)] = False
    if not keep.any():
        i = min(why)
        raise HwsimError(f"trace {path.name}: no row can be served (row {i + 1}: {why[i]}); token counts must be "
                         f"whole numbers from 1 to {MAX_TOKENS:,} and times numbers; fix the rows")
    t = (t[keep] - t[keep].min()) * time_scale
    prefix = None
    if "hash_ids" in raw.columns:
        prefix = [_mooncake_prefix(h, p) for h, p, k in zip(raw["hash_ids"], prompts, keep) if k]
    df = validate(frame(t, prompts[keep], outputs[keep], prefix))
    skipped = [{"row": i + 1, "status": f"error: {why[i]}"} for i in sorted(why)]
    df.attrs["skipped_rows"] = skipped
    if skipped:
        first = skipped[0]
        warnings.warn(HwsimWarning(
            f"trace {path.name}: {len(skipped)} row(s) left out (row {first['row']}: {first['status'][7:]}"
            f"{'; ...' if len(skipped) > 1 else ''}); serving the other {int(keep.sum())}"))
    return df


MAX_TOKENS = 2 ** 40        # far past any context; larger numbers are typos (and would overflow int64 sums)


def _token_counts(column: pd.Series, name: str, why: dict) -> np.ndarray:
    """A trace's length column as int64 (1 in a bad row), each bad row's reason put in `why` (row index -> text)
    unless it has one: text, blanks, fractions, numbers below 1 or absurdly large."""
    vals = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(vals) | (vals < 1) | (vals != np.floor(vals)) | (vals > MAX_TOKENS)
    for i in np.flatnonzero(bad):
        cell = column.iloc[i]
        shown = "a blank" if cell is None or (isinstance(cell, float) and cell != cell) or not str(cell).strip() \
            else repr(str(cell).strip()) if isinstance(cell, str) else f"{cell:g}" if isinstance(cell, float) else str(cell)
        why.setdefault(int(i), f"column {name} holds {shown}, not a whole number of tokens from 1 to {MAX_TOKENS:,}")
    return np.where(bad, 1.0, vals).astype(np.int64)


def lengths_only(source: str, n: int, rate: float, rng, arrival="poisson", cv=1.0) -> pd.DataFrame:
    """A trace's lengths (in order, repeated if needed) with arrivals drawn at `rate`."""
    df = read_trace(source)
    idx = np.arange(n) % len(df)
    return frame(arrivals(arrival, n, rate, rng, cv), df.prompt_tokens.to_numpy()[idx],
                 df.output_tokens.to_numpy()[idx], df.prefix.to_numpy()[idx])


def _mooncake_prefix(hash_ids, prompt: int) -> tuple:
    """Mooncake's hash_ids name 512-token blocks (a block's id depends on all blocks before it), so each
    full block is a prefix segment; the last, partial block is the request's own."""
    if isinstance(hash_ids, str):
        ids = [int(x) for x in hash_ids.replace(",", " ").replace("[", " ").replace("]", " ").split()]
    else:
        ids = [int(x) for x in (hash_ids if hash_ids is not None else [])]
    full = min(len(ids), int(prompt) // MOONCAKE_BLOCK)
    return tuple((f"mc{h}", MOONCAKE_BLOCK) for h in ids[:full])


# --- shared prefixes ---------------------------------------------------------------------------------
def with_system_prompts(df: pd.DataFrame, prompts: int, tokens: int, rng: np.random.Generator,
                        zipf: float = 0.0, key: str = "sys") -> pd.DataFrame:
    """Put one of `prompts` shared system prompts (or few-shot example sets) of `tokens` tokens in front of
    every request; which one is uniform, or Zipf-distributed with exponent `zipf` > 0 (popular ones first)."""
    if prompts <= 0 or tokens <= 0:
        raise HwsimError("system prompts need a positive count and length")
    weights = 1.0 / np.arange(1, prompts + 1) ** zipf if zipf > 0 else np.ones(prompts)
    pick = rng.choice(prompts, size=len(df), p=weights / weights.sum())
    out = df.copy()
    out["prompt_tokens"] = out["prompt_tokens"] + tokens
    out["prefix"] = [((f"{key}{k}", tokens),) + tuple(p) for k, p in zip(pick, out["prefix"])]
    return out


def conversations(sessions: int, turns: int, rate: float, source: str = "sharegpt-turns", think_s: float = 30.0,
                  seed: int = 0, system_tokens: int = 0, max_total: int = None) -> pd.DataFrame:
    """Multi-turn chat: `sessions` sessions start as a Poisson process at `rate`; each has `turns` turns, and
    turn k+1 arrives an exponential think time (mean `think_s`) after turn k completes. Turn k's prompt is the
    whole history (earlier prompts and answers) plus a new message, so the history is its shared prefix."""
    if sessions <= 0 or turns <= 0:
        raise HwsimError("conversations need a positive number of sessions and turns")
    rng = np.random.default_rng(seed)
    starts = arrivals("poisson", sessions, rate, rng)
    msg, out = lengths(source, sessions * turns, rng)
    rows_t, rows_p, rows_o, rows_prefix, rows_parent, rows_key = [], [], [], [], [], []
    for s in range(sessions):
        history, segs, parent = system_tokens, ((("sys0", system_tokens),) if system_tokens else ()), -1
        for k in range(turns):
            i = s * turns + k
            prompt = history + int(msg[i])
            if max_total and prompt + int(out[i]) > max_total:
                break
            rows_t.append(starts[s] if k == 0 else rng.exponential(think_s))
            rows_p.append(prompt)
            rows_o.append(int(out[i]))
            rows_prefix.append(segs)
            rows_parent.append(parent)
            rows_key.append(f"c{s}t{k}")
            parent = len(rows_t) - 1
            segs = segs + ((f"c{s}t{k}", int(msg[i]) + int(out[i])),)
            history = prompt + int(out[i])
    df = frame(rows_t, rows_p, rows_o, rows_prefix, rows_parent)
    df["cache_key"] = rows_key
    return df


def closed_loop(concurrency: int, requests: int, source: str = "fixed:1000:1000", seed: int = 0,
                think_s: float = 0.0, max_total: int = None, stagger_s: float = 0.0) -> pd.DataFrame:
    """A fixed-concurrency benchmark (genai-perf / AIPerf `--concurrency`, vLLM `--max-concurrency`):
    `concurrency` clients each send their next request `think_s` after the previous one completes,
    `requests` in all. Requests share nothing (no prefix). Clients start at uniform random times in
    [0, stagger_s) (a benchmark's warm-up leaves them out of step; all at 0 keeps identical requests in lockstep)."""
    if concurrency <= 0 or requests <= 0:
        raise HwsimError("a closed loop needs positive concurrency and request count")
    rng = np.random.default_rng(seed)
    p, o = lengths(source, requests, rng, max_total)
    t, parent = np.zeros(requests), np.full(requests, -1)
    if stagger_s > 0:
        t[:concurrency] = np.sort(rng.uniform(0.0, stagger_s, min(concurrency, requests)))
    for i in range(concurrency, requests):
        parent[i] = i - concurrency
        t[i] = think_s
    return frame(t, p, o, None, parent)


def sampled_completions(groups: int, samples: int, prefix_tokens: int, suffix_tokens: int, output_tokens: int,
                        rate: float = None, seed: int = 0) -> pd.DataFrame:
    """Trees of samples (Hydragen): each of `groups` prompts of `prefix_tokens` shared tokens (+ `suffix_tokens`
    of its own per sample) is completed `samples` times; a group's samples arrive together (all at 0 without
    a rate, else groups as a Poisson process)."""
    if min(groups, samples, prefix_tokens, output_tokens) <= 0 or suffix_tokens < 0:
        raise HwsimError("sampled completions need positive groups, samples, prefix and output lengths")
    rng = np.random.default_rng(seed)
    starts = arrivals("poisson", groups, rate, rng) if rate else np.zeros(groups)
    t = np.repeat(starts, samples)
    prefix = [((f"doc{g}", prefix_tokens),) for g in range(groups) for _ in range(samples)]
    return frame(t, np.full(groups * samples, prefix_tokens + max(suffix_tokens, 0)),
                 np.full(groups * samples, output_tokens), prefix)


def describe(df: pd.DataFrame) -> dict:
    """Summary numbers of a request table (for reports)."""
    span = float(df.arrival_s.max() - df.arrival_s.min()) if (df.parent < 0).all() else None
    shared = np.array([sum(s for _, s in p) for p in df.prefix], dtype=float)
    return {"requests": int(len(df)), "prompt_mean": float(df.prompt_tokens.mean()),
            "output_mean": float(df.output_tokens.mean()), "prompt_p99": float(df.prompt_tokens.quantile(0.99)),
            "shared_prefix_fraction": float(shared.sum() / df.prompt_tokens.sum()),
            "offered_rate": (len(df) - 1) / span if span else None}
