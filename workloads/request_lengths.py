"""Prompt and output lengths of chat datasets, as quantile tables, for sampling serving batches.

Why tables and not the means: a decode batch's per-request context lengths are skewed (most ShareGPT
prompts are short, a few are very long), and that spread is what makes PIM channels unevenly loaded.
The tables are the percentiles (0, 1, 2.5, 5, 10, 15, ... 90, 92.5, 95, 97.5, 99, 99.5, 99.9, 100) of
the (input_toks, output_toks) pairs the NeuPIMs authors published with their trace generator (github
casys-kaist/NeuPIMs, trace-generator/share-gpt2/stats.tsv: 390,819 rows with output > 0, mean 80.0 in /
295.7 out; trace-generator/alpaca/stats.tsv: 51,974 rows, mean 12.1 / 55.8; the paper quotes 80/296 and
12/56). Sampling interpolates the inverse CDF; input and output are drawn independently (their log
lengths correlate at 0.07 in the ShareGPT file). With both capped at 1,024 tokens the sampled means are
66.2 / 294.1 (file: 63.9 / 293.3) for ShareGPT and 12.1 / 56.4 for Alpaca.
"""
from __future__ import annotations

import numpy as np

from .errors import HwsimError

PERCENTILES = (0, 1, 2.5, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 92.5, 95,
               97.5, 99, 99.5, 99.9, 100)
DATASETS = {
    "sharegpt": {
        "input": (0, 1, 1, 3, 5, 7, 8, 9, 11, 12, 14, 15, 17, 20, 23, 26, 32, 39, 51, 71, 118, 174, 302, 626,
                  1262, 1992, 3534, 196710),
        "output": (1, 9, 17, 30, 58, 87, 113, 139, 166, 192, 216, 239, 261, 283, 306, 331, 358, 390, 430, 487,
                   576, 643, 727, 816, 961, 1041, 1482, 63144),
    },
    "alpaca": {
        "input": (4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 10, 11, 11, 12, 12, 13, 13, 14, 15, 16, 17, 19, 20, 23, 27,
                  30, 41, 99),
        "output": (1, 1, 2, 3, 6, 8, 10, 13, 16, 19, 25, 32, 41, 50, 59, 67, 76, 85, 94, 106, 122, 133, 151,
                   190, 249, 294, 416, 1005),
    },
}


def sample_requests(dataset: str, n: int, rng: np.random.Generator) -> tuple:
    """(input lengths, output lengths) of `n` requests, integer arrays; every output at least one token."""
    table = DATASETS.get(dataset)
    if table is None:
        raise HwsimError(f"unknown dataset '{dataset}'; use one of {', '.join(DATASETS)}")
    u = rng.random((2, n)) * 100.0
    inp = np.rint(np.interp(u[0], PERCENTILES, table["input"])).astype(int)
    out = np.maximum(np.rint(np.interp(u[1], PERCENTILES, table["output"])).astype(int), 1)
    return inp, out
