"""DRAM-command timing of in-bank attention GEMVs on a Newton/NeuPIMs-style HBM-PIM channel.

Why a command-level model: in-bank PIM is not limited by bandwidth but by how fast one channel can open
a row in all its banks and step the column commands that feed the multipliers. All banks of a channel
compute in lock-step on one all-bank command, so a channel runs one GEMV "tile" (one open row per bank)
at a time, and the requests whose KV cache lives in that channel queue behind each other.

One tile (all times in ns at the preset's tCK):
  open     the row in every bank; per rank at most 4 activations per tFAW and one per tRRD_S, ranks in
           parallel: last ACT at max((n-1) tRRD_S, floor((n-1)/4) tFAW) for n banks a rank, then tRCD
  compute  `comps` all-bank column commands, each feeding `multipliers` elements to every bank's MACs:
           max(column-to-column spacing max(burst, tCCD_L), elements / multipliers tCK) per command,
           plus the adder tree (log2 multipliers stages)
  read-out `readres` results of 64 B each over the channel's data bus, one per max(burst, tCCD_L)
  close    precharge no earlier than tRAS after the last ACT, then tRP before the next tile's ACT
A GWRITE moves the input vector (query chunk, or one head's softmax scores) into the channel's global
buffer over the data bus: CWL + bytes / access bytes bursts. Refresh (tRFC every tREFI) stretches it all.

Layout (NeuPIMs repo src/tensor/PIMTensor.cc, src/operations/NeuPIMSLogitSoftmax.cc, NeuPIMSAttend.cc):
  K: one token per bank, a token's keys span ceil(E/row elements) rows, a row holding row/dk heads;
     QK^T = per row-chunk one GWRITE of the query chunk, then ceil(L/banks) tiles of (heads x dk/mult)
     comps and one READRES per head.
  V: one head dimension per bank, a row holding `row elements` tokens; PV = per head and per 512-token
     chunk one GWRITE of the scores, then ceil(dk/banks) tiles of ceil(tokens/mult) comps, one READRES.
Cross-check: the repo's channel-load estimator (trace-generator/channel_load_balancing.py) charges 184
cycles per tile and 100 per GWRITE; its NewtonSim channel_state.cc charges tFAW x (G_ACTs/2 - 1) + tRCD
for the activation (90 + 14 here) and gwrite_delay = (tCCD_S + tCCD_L) x 32 = 96 cycles per GWRITE.
This model gives 194 ns per QK tile and 36 ns per 1 KB GWRITE (a 1 KB write is 16 bursts of 2 ns; the
repo's 96 is a simulator constant we do not adopt). Command bus: a tile takes 8 four-bank G_ACTs (or 32
ACTs) + 2 PRE on the row bus and, with NeuPIMs' composite COMPS_READRES, 1 + heads commands on the column
bus: a few % of the slots, so it is not a limit here (Newton's one command per COMP would fill half the
column slots, but a blocked Newton channel serves no one else anyway). Not modelled: row activations the
NPU issues on the same rank (they share tFAW), and the repo's rounding of comps to a power of two.
"""
from __future__ import annotations

import math

import numpy as np

from workloads.errors import HwsimError

NEEDED = ("tRCD_ns", "tRP_ns", "tRAS_ns", "tCCD_L_ns", "tFAW_ns", "tRRD_S_ns", "tCK_ns", "access_bytes",
          "bus_width_bits", "multipliers_per_bank")


class PIMTiming:
    """Per-request attention time on one PIM channel from DRAM timing (see module docstring)."""

    def __init__(self, device, tfaw_scale: float = 1.0):
        mem = device.main_memory
        x = dict(mem.extra)
        missing = [k for k in NEEDED if k not in x]
        if missing:
            raise HwsimError(f"{device.id} memory lacks DRAM timing {', '.join(missing)} needed by the PIM timing model")
        self.x = x
        self.channels = mem.channels or 1
        self.banks = mem.banks_per_channel or 1
        self.ranks = int(x.get("ranks_per_channel", 1))
        self.row_bytes = mem.row_buffer_bytes or 1024
        self.elem = 2                                             # fp16 KV cache and vectors
        self.mult = int(x["multipliers_per_bank"])
        self.tck = x["tCK_ns"]
        self.tfaw = x["tFAW_ns"] * tfaw_scale
        burst = x.get("BL", 4) / 2 * self.tck                    # a DDR burst of BL beats: BL/2 clocks
        self.col = max(burst, x["tCCD_L_ns"])                    # back-to-back column commands, same bank group
        self.refresh = 1.0 / (1.0 - x.get("tRFC_ns", 0.0) / x["tREFI_ns"]) if x.get("tREFI_ns") else 1.0

    # --- DRAM-level pieces (ns) ---------------------------------------------------------------------
    def last_act_ns(self) -> float:
        """When the last bank of a rank gets its ACT (ranks activate in parallel)."""
        n = self.banks // self.ranks
        return max((n - 1) * self.x["tRRD_S_ns"], (n - 1) // 4 * self.tfaw)

    def tile_ns(self, comps, readres) -> np.ndarray:
        """One all-bank GEMV tile: open a row everywhere, `comps` MAC commands, `readres` result reads, close."""
        comps, readres = np.asarray(comps, float), np.asarray(readres, float)
        act = self.last_act_ns()
        per_comp = max(self.col, self.tck)        # a command brings `mult` elements a bank: one tCK of its MACs
        tree = math.log2(self.mult) * self.tck
        busy = act + self.x["tRCD_ns"] + comps * per_comp + tree + readres * self.col
        return np.maximum(busy, act + self.x["tRAS_ns"]) + self.x["tRP_ns"]

    def gwrite_ns(self, nbytes) -> np.ndarray:
        """Input vector into the channel's global buffer over the data bus."""
        bursts = np.ceil(np.asarray(nbytes, float) / self.x["access_bytes"])
        return self.x.get("CWL_ns", 0.0) + bursts * self.col

    # --- one request, one layer ---------------------------------------------------------------------
    def attention_ns(self, ctx, heads: int, dk: int) -> dict:
        """ns for QK^T and PV of requests with context lengths `ctx` (array) on their channel, plus the
        part of it that holds the channel's data bus (GWRITE + READRES) and the commands issued."""
        L = np.maximum(np.asarray(ctx, float), 1.0)
        row_elems = self.row_bytes // self.elem
        per_row = max(row_elems // dk, 1)                         # heads whose keys share one row
        chunks = math.ceil(heads / per_row)
        comps_head = math.ceil(dk / self.mult)
        qk = np.zeros_like(L)
        bus = np.zeros_like(L)
        for c in range(chunks):
            h = min(per_row, heads - c * per_row)
            tiles = np.ceil(L / self.banks)
            gw = self.gwrite_ns(h * dk * self.elem)
            qk += gw + tiles * self.tile_ns(h * comps_head, h)
            bus += gw + tiles * h * self.col
        full, rest = np.floor(L / row_elems), L - np.floor(L / row_elems) * row_elems
        v_tiles = math.ceil(dk / self.banks)

        def chunk(tokens):
            return self.gwrite_ns(tokens * self.elem) + v_tiles * self.tile_ns(np.ceil(tokens / self.mult), 1)

        pv = heads * (full * chunk(row_elems) + np.where(rest > 0, chunk(np.maximum(rest, 1)), 0.0))
        gw_pv = heads * (full * self.gwrite_ns(row_elems * self.elem)
                         + np.where(rest > 0, self.gwrite_ns(np.maximum(rest, 1) * self.elem), 0.0))
        bus += gw_pv + heads * (full + (rest > 0)) * v_tiles * self.col
        total = (qk + pv) * self.refresh
        return {"total": total, "qk": qk * self.refresh, "pv": pv * self.refresh, "bus": bus}

    def peak_macs_ns(self) -> float:
        """MACs per ns of one channel with every multiplier busy every tCK."""
        return self.banks * self.mult / self.tck

    def macs(self, ctx, heads: int, dk: int) -> np.ndarray:
        return 2.0 * heads * dk * np.asarray(ctx, float)          # QK^T and PV, one MAC per KV element
