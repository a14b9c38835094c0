"""A table of design points as integer codes: every text `evaluate` needs is built once per distinct value, not
once per point.

    enc = encode(points)        # points: pandas DataFrame, one row per design point (axes.DEFAULTS fill gaps)
    enc.hardware[enc.hw]        # each point's device (or system) text: PRESET+KEY=VALUE... from device/system
                                #   and the hw.KEY columns
    for key, idx in enc.groups: # key: the group's texts (GROUP_KEYS without hardware, + the system's hardware)
        ...                     # idx: the group's rows (positions), increasing; groups in order of first row
    enc.b, enc.s, enc.c, enc.o  # batch, seq_len, context, output_len (int64)

Each column is factorized (pandas' hash table), its distinct values written as text the way
`Series.astype(str)` writes them, and points are grouped on combined integer codes. An empty or missing hw.KEY
value (NaN, None, "") adds no override to that point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUP_TEXT = ("model", "phase", "dtype", "quant", "kv_dtype", "profile", "host", "host_speed", "system", "mapping")
_BLANK_IF_MISSING = ("kv_dtype", "system", "mapping", "host")


@dataclass
class Encoded:
    n: int
    b: np.ndarray
    s: np.ndarray
    c: np.ndarray
    o: np.ndarray
    hardware: np.ndarray        # distinct hardware texts (object array)
    hw: np.ndarray              # per point, its index into `hardware`
    system: np.ndarray          # per point, whether it is a system point (system text set)
    groups: list                # [(key texts tuple, row positions)]


def _codes(values, blank: bool = False):
    """(codes [n] int64, distinct texts as a list) of a column: texts as `Series.astype(str)` writes each value
    (`blank`: missing values as ""); values that write the same text share a code."""
    import pandas as pd
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    u = pd.Series(uniques)
    if blank:
        u = u.fillna("")
    texts = [str(t) for t in u.astype(str).tolist()]
    return _dedupe(np.asarray(codes, dtype=np.int64), texts)


def _dedupe(codes, texts):
    if len(set(texts)) == len(texts):
        return codes, texts
    first, remap = {}, []
    for t in texts:
        remap.append(first.setdefault(t, len(first)))
    return np.asarray(remap, dtype=np.int64)[codes], list(first)


def _override_codes(values):
    """Like `_codes` for an hw.KEY column; a missing or empty value is None (no override)."""
    import pandas as pd
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    u = pd.Series(uniques)
    missing = u.isna().to_numpy()
    texts = [None if miss or str(t) == "" else str(t) for t, miss in zip(u.astype(str).tolist(), missing)]
    return np.asarray(codes, dtype=np.int64), texts


def combine(codes: list, sizes: list):
    """One int64 code per row for a tuple of code columns (mixed radix, compacted when it would overflow):
    (codes, the row of each distinct code's first appearance, in order of first appearance)."""
    n = len(codes[0]) if codes else 0
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for col, size in zip(codes, sizes):
        size = max(int(size), 1)
        if span * size >= 2 ** 62:
            _, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64)
            span = int(key.max()) + 1 if n else 1
        key = key * size + col
        span *= size
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")           # groups in order of first appearance
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inv.reshape(-1)], first[order]


def encode(points) -> Encoded:
    from .axes import DEFAULTS
    n = len(points)
    cols = {}

    def column(name, blank=False):
        if name in points:
            return _codes(points[name], blank)
        return np.zeros(n, dtype=np.int64), [str(DEFAULTS.get(name, ""))]      # a missing column: its default
    for name in GROUP_TEXT:
        cols[name] = column(name, name in _BLANK_IF_MISSING)
    dev_codes, dev_texts = column("device")
    sys_codes, sys_texts = cols["system"]
    on_system = np.asarray([t != "" for t in sys_texts], dtype=bool)[sys_codes] if n else np.zeros(0, dtype=bool)
    # the base text: the system where there is one, else the device
    base_key, base_first = combine([sys_codes, dev_codes], [len(sys_texts), len(dev_texts)])
    base_texts = [sys_texts[sys_codes[i]] or dev_texts[dev_codes[i]] for i in base_first]
    base_codes, base_texts = _dedupe(base_key, base_texts)
    hw_cols = [c for c in points.columns if isinstance(c, str) and c.startswith("hw.")]
    parts = [_override_codes(points[c]) for c in hw_cols]
    hw_key, hw_first = combine([base_codes] + [p[0] for p in parts], [len(base_texts)] + [len(p[1]) for p in parts])
    hw_texts = []
    for i in hw_first:
        text = [base_texts[base_codes[i]]]
        text += [f"{c[3:]}={p[1][p[0][i]]}" for c, p in zip(hw_cols, parts) if p[1][p[0][i]] is not None]
        hw_texts.append("+".join(text))
    hw, hw_texts = _dedupe(hw_key, hw_texts)
    # groups: the group columns' texts, and for system points the hardware text (one group per system text)
    sys_hw = np.where(on_system, hw, -1) + 1
    keys = [cols[name][0] for name in GROUP_TEXT] + [sys_hw]
    sizes = [len(cols[name][1]) for name in GROUP_TEXT] + [len(hw_texts) + 1]
    gkey, gfirst = combine(keys, sizes)
    order = np.argsort(gkey, kind="stable")
    bounds = np.flatnonzero(np.diff(gkey[order])) + 1
    groups = []
    for g, idx in enumerate(np.split(order, bounds) if n else []):
        i = gfirst[g]
        key = tuple(cols[name][1][cols[name][0][i]] for name in GROUP_TEXT)
        groups.append((key + (hw_texts[hw[i]] if on_system[i] else "",), idx))

    def ints(name):
        return points[name].to_numpy(dtype=np.int64) if name in points else np.full(n, DEFAULTS[name], dtype=np.int64)
    return Encoded(n=n, b=ints("batch"), s=ints("seq_len"), c=ints("context"), o=ints("output_len"),
                   hardware=np.asarray(hw_texts, dtype=object), hw=hw, system=on_system, groups=groups)
