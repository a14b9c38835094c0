"""Row power controllers (a registry) and the telemetry that feeds them.

A controller is a state machine over telemetry samples of the row's power as a fraction of its budget:
`observe(t, frac)` at each sample (time t, when the sample is read), and `state(t)` the knob setting in force at
time t for each priority class, as an index into `settings[priority]` (a list of `Knobs`). Actions take effect
`latency_s` after the sample that decided them (POLCA's out-of-band path: ~40 s); the power brake has its own
`brake_latency_s` (in-band, within 5 s). One out-of-band action is in flight at a time: the next decision waits
until the last one has taken effect and its effect has been seen. Every action is logged in `events`.

A controller is fitted to the row's server (`fit(server)`, done by run_full, run_aggregate and `hwsim power`): a
clock given as a parameter below the GPUs' lowest SM clock is refused (the GPU would run at its lowest clock, not
at the one asked for), and POLCA's default brake clock becomes max(288 MHz, the lowest clock).

Registry (`make_controller(name, **params)`):
- `none`: nothing is capped (the reference run);
- `power-cap`: static per-GPU power caps per class (`high_w`, `low_w`);
- `freq-cap`: static SM clock caps per class (`high_mhz`, `low_mhz`);
- `polca`: POLCA's two-threshold policy (arXiv 2308.12908, Algorithm 1 as summarised in seed-papers section 5
  [2nd]): above T1 (80%) low priority to 1275 MHz; above T2 (89%) low priority to 1110 MHz, then, if the row
  stays above T2, high priority to 1305 MHz; each step released when power falls `hysteresis` (5%) below its
  threshold; above 100% the power brake pulls every GPU to ~288 MHz [preprint] within 5 s, released below T2
  (288 MHz is an A100 clock: on GPUs whose lowest clock is higher, e.g. the H100's 345 MHz, the brake defaults to
  that lowest clock);
- `dvfs-phase`: in the spirit of DynamoLLM/TAPAS, decode-only iterations (memory-bound) run at a lower clock
  (`decode_mhz`), prefills at full clock, per class (`classes=high,low`); static, no telemetry needed.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from workloads.errors import HwsimError

from .serving_load import Knobs, NO_KNOBS

PRIORITIES = ("high", "low")


@dataclass
class Event:
    decided_s: float
    effective_s: float
    kind: str            # cap, uncap, brake, release
    detail: str
    row_fraction: float

    def to_dict(self):
        return {"decided_s": round(self.decided_s, 3), "effective_s": round(self.effective_s, 3), "kind": self.kind,
                "detail": self.detail, "row_fraction": round(self.row_fraction, 4)}


class Controller:
    name = "base"
    needs_telemetry = False

    def __init__(self, latency_s: float = 40.0, brake_latency_s: float = 5.0):
        if latency_s < 0 or brake_latency_s < 0:
            raise HwsimError("control latencies must be >= 0 s")
        self.latency_s = float(latency_s)
        self.brake_latency_s = float(brake_latency_s)
        self.settings = {p: [NO_KNOBS] for p in PRIORITIES}
        self.events = []

    def reset(self):
        self.events = []

    def observe(self, t: float, frac: float):
        pass

    def state(self, t: float) -> dict:
        return {p: 0 for p in PRIORITIES}

    def knobs(self, t: float, priority: str) -> Knobs:
        return self.settings[priority][self.state(t)[priority]]

    def params(self) -> dict:
        return {"latency_s": self.latency_s, "brake_latency_s": self.brake_latency_s}

    def clocks(self) -> dict:
        """The clock parameters given to this controller (MHz), checked against the GPUs' lowest clock by `fit`."""
        return {}

    def fit(self, server):
        """Checks the given clocks against the lowest SM clock of `server`'s GPUs (a ServerSpec); returns self."""
        given = self.clocks()
        if given:
            f_min = server.gpu_min_clock_mhz()
            for key, v in given.items():
                if v < f_min * (1 - 1e-9):
                    raise HwsimError(f"policy {self.name}: {key}={v:g} MHz is below the lowest SM clock of {server.id}'s "
                                     f"GPUs ({server.gpu_preset}: {f_min:g} MHz), which a cap that low runs at; give "
                                     f"{key} >= {f_min:g}")
        return self


class NoControl(Controller):
    name = "none"


class StaticCaps(Controller):
    def __init__(self, high: Knobs, low: Knobs, clocks: dict = None, **kw):
        super().__init__(**kw)
        self.settings = {"high": [high], "low": [low]}
        self._clocks = {k: float(v) for k, v in (clocks or {}).items() if v is not None}

    def clocks(self):
        return dict(self._clocks)

    def params(self):
        return {"high": self.settings["high"][0].label(), "low": self.settings["low"][0].label()}


def _power_cap(high_w: float = None, low_w: float = None, **kw):
    for v in (high_w, low_w):
        if v is not None and v <= 0:
            raise HwsimError("power caps must be positive watts per GPU")
    c = StaticCaps(Knobs(power_w=high_w) if high_w else NO_KNOBS, Knobs(power_w=low_w) if low_w else NO_KNOBS, **kw)
    c.name = "power-cap"
    return c


def _freq_cap(high_mhz: float = None, low_mhz: float = None, **kw):
    for v in (high_mhz, low_mhz):
        if v is not None and v <= 0:
            raise HwsimError("clock caps must be positive MHz")
    c = StaticCaps(Knobs(clock_mhz=high_mhz) if high_mhz else NO_KNOBS,
                   Knobs(clock_mhz=low_mhz) if low_mhz else NO_KNOBS, {"high_mhz": high_mhz, "low_mhz": low_mhz}, **kw)
    c.name = "freq-cap"
    return c


def _dvfs_phase(decode_mhz: float = 1110.0, classes: str = "high,low", **kw):
    if decode_mhz <= 0:
        raise HwsimError("decode_mhz must be positive")
    which = [c.strip() for c in str(classes).split(",") if c.strip()]
    bad = set(which) - set(PRIORITIES)
    if bad:
        raise HwsimError(f"dvfs-phase classes must be among {', '.join(PRIORITIES)}, got {', '.join(sorted(bad))}")
    k = Knobs(decode_clock_mhz=decode_mhz)
    c = StaticCaps(k if "high" in which else NO_KNOBS, k if "low" in which else NO_KNOBS, {"decode_mhz": decode_mhz},
                   **kw)
    c.name = "dvfs-phase"
    return c


BRAKE_MHZ = 288.0          # POLCA's power-brake clock on the A100 [preprint]
A100_MAX_MHZ = 1410.0      # the A100 SXM's highest SM clock (NVIDIA A100 datasheet): POLCA's clocks are A100 clocks


class Polca(Controller):
    """POLCA's policy. Levels: 0 nothing capped; 1 low priority at `lp1_mhz`; 2 low at `lp2_mhz`; 3 low at
    `lp2_mhz` and high at `hp_mhz`. The brake overrides all of them with `brake_mhz`.

    POLCA's clocks (1275 / 1110 / 1305 MHz, brake 288) were set for the A100 (highest clock 1410 MHz). A clock not
    given keeps its fraction of the A100's highest clock on the row's GPUs, set when the controller is fitted to the
    row's server (`fit`): on an H100 or H200 (1980 MHz) lp1 1790, lp2 1559, hp 1833, brake 404 MHz, where A100 clocks
    taken as they are would cap the low-priority GPUs at 64% of their clock instead of POLCA's 90% (an assumption:
    POLCA published no other GPU's settings); never below the GPUs' lowest SM clock. A clock given below the GPUs'
    lowest (`brake_mhz`, `lp1_mhz`, `lp2_mhz`, `hp_mhz`) is refused there."""
    name = "polca"
    needs_telemetry = True

    A100_CLOCKS = {"lp1_mhz": 1275.0, "lp2_mhz": 1110.0, "hp_mhz": 1305.0, "brake_mhz": BRAKE_MHZ}

    def __init__(self, t1: float = 0.80, t2: float = 0.89, hysteresis: float = 0.05, lp1_mhz: float = None,
                 lp2_mhz: float = None, hp_mhz: float = None, brake: float = 1.0, brake_mhz: float = None, **kw):
        super().__init__(**kw)
        given = {"lp1_mhz": lp1_mhz, "lp2_mhz": lp2_mhz, "hp_mhz": hp_mhz, "brake_mhz": brake_mhz}
        self._given = {k for k, v in given.items() if v is not None}
        lp1_mhz, lp2_mhz, hp_mhz, brake_mhz = (self.A100_CLOCKS[k] if v is None else v for k, v in given.items())
        if not 0 < t1 <= t2 <= brake:
            raise HwsimError(f"POLCA thresholds need 0 < T1 <= T2 <= brake, got {t1}, {t2}, {brake}")
        if not 0 <= hysteresis < t1:
            raise HwsimError(f"hysteresis must be in [0, T1), got {hysteresis}")
        for v in (lp1_mhz, lp2_mhz, hp_mhz, brake_mhz):
            if v <= 0:
                raise HwsimError("POLCA clocks must be positive MHz")
        self.t1, self.t2, self.h, self.brake = float(t1), float(t2), float(hysteresis), float(brake)
        self.lp1, self.lp2, self.hp, self.brake_mhz = float(lp1_mhz), float(lp2_mhz), float(hp_mhz), float(brake_mhz)
        self._set_knobs()
        self.reset()

    def _set_knobs(self):
        b = Knobs(clock_mhz=self.brake_mhz)
        # state index per class: low 0..2 (none, lp1, lp2) + 3 brake; high 0..1 (none, hp) + 2 brake
        self.settings = {"low": [NO_KNOBS, Knobs(clock_mhz=self.lp1), Knobs(clock_mhz=self.lp2), b],
                         "high": [NO_KNOBS, Knobs(clock_mhz=self.hp), b]}

    def _values(self) -> dict:
        return {"lp1_mhz": self.lp1, "lp2_mhz": self.lp2, "hp_mhz": self.hp, "brake_mhz": self.brake_mhz}

    def clocks(self):
        return {k: v for k, v in self._values().items() if k in self._given}

    def fit(self, server):
        super().fit(server)
        scale = server.gpu_max_clock_mhz() / A100_MAX_MHZ
        f_min = server.gpu_min_clock_mhz()
        values = self._values()
        for key, a100 in self.A100_CLOCKS.items():
            if key not in self._given:
                values[key] = max(round(a100 * scale), f_min)
        self.lp1, self.lp2, self.hp, self.brake_mhz = (float(values[k]) for k in self.A100_CLOCKS)
        self._set_knobs()
        return self

    def reset(self):
        super().reset()
        self.level = 0                    # decided
        self.braking = False
        self.pending_until = -1.0
        self.sched = []                   # (effective time, level) in order
        self.bsched = []                  # (effective time, braking)
        self.eff_level = 0
        self.eff_brake = False
        self._i = self._j = 0

    def params(self):
        return {"t1": self.t1, "t2": self.t2, "hysteresis": self.h, "lp1_mhz": self.lp1, "lp2_mhz": self.lp2,
                "hp_mhz": self.hp, "brake": self.brake, "brake_mhz": self.brake_mhz, **super().params()}

    def observe(self, t, frac):
        if not self.braking and frac > self.brake:
            self.braking = True
            self.bsched.append((t + self.brake_latency_s, True))
            self.events.append(Event(t, t + self.brake_latency_s, "brake", f"all GPUs to {self.brake_mhz:.0f} MHz", frac))
        elif self.braking and frac < self.t2 and t >= self.bsched[-1][0]:
            self.braking = False
            self.bsched.append((t + self.brake_latency_s, False))
            self.events.append(Event(t, t + self.brake_latency_s, "release", "power brake released", frac))
        if t < self.pending_until:
            return
        lvl = self.level
        new = lvl
        if frac > self.t2:
            new = 2 if lvl < 2 else 3
        elif frac > self.t1:
            new = max(lvl, 1)
        elif lvl >= 2 and frac < self.t2 - self.h:
            new = lvl - 1
        elif lvl == 1 and frac < self.t1 - self.h:
            new = 0
        if lvl >= 2 and frac < self.t2 - self.h and new == lvl:
            new = lvl - 1
        if new != lvl:
            eff = t + self.latency_s
            self.level = new
            self.pending_until = eff
            self.sched.append((eff, new))
            kind = "cap" if new > lvl else "uncap"
            self.events.append(Event(t, eff, kind, self._describe(new), frac))

    def _describe(self, lvl):
        return ["no caps", f"low priority at {self.lp1:.0f} MHz", f"low priority at {self.lp2:.0f} MHz",
                f"low priority at {self.lp2:.0f} MHz, high priority at {self.hp:.0f} MHz"][lvl]

    def state(self, t):
        while self._i < len(self.sched) and self.sched[self._i][0] <= t:
            self.eff_level = self.sched[self._i][1]
            self._i += 1
        while self._j < len(self.bsched) and self.bsched[self._j][0] <= t:
            self.eff_brake = self.bsched[self._j][1]
            self._j += 1
        if self.eff_brake:
            return {"low": 3, "high": 2}
        lvl = self.eff_level
        return {"low": min(lvl, 2), "high": 1 if lvl == 3 else 0}


REGISTRY = {
    "none": lambda **kw: NoControl(**{k: v for k, v in kw.items() if k in ("latency_s", "brake_latency_s")}),
    "power-cap": _power_cap,
    "freq-cap": _freq_cap,
    "polca": Polca,
    "dvfs-phase": _dvfs_phase,
}


def controller_names() -> list:
    return sorted(REGISTRY)


def make_controller(name: str, **params) -> Controller:
    if name not in REGISTRY:
        raise HwsimError(f"unknown policy '{name}'; choose one of {', '.join(controller_names())}")
    for key, value in params.items():       # NaN passes every `v <= 0` check below; inf latencies never act
        if isinstance(value, (int, float)) and not math.isfinite(value):
            raise HwsimError(f"policy {name}: {key} must be a finite number, got {value}")
        # every parameter is a number but dvfs-phase's `classes`: a word given for one failed deep inside
        # ("'<' not supported between instances of 'int' and 'str'")
        if isinstance(value, str) and key != "classes":
            raise HwsimError(f"policy {name}: {key} must be a number, got {value!r}")
    try:
        return REGISTRY[name](**params)
    except TypeError as exc:
        raise HwsimError(f"policy {name}: bad parameter ({exc})") from None


class FullPathControl:
    """Feeds a controller from the row's telemetry inside the serving event loop (sim/cluster/serving_load.py):
    samples every `sample_s` of the row's wall power averaged over the sample period, read `telemetry_delay_s`
    after it ends; processed in batches (at most every `batch_s`, shorter than any latency, so no decision is
    applied late)."""

    def __init__(self, controller: Controller, budget_w: float, sample_s: float = 0.1, telemetry_delay_s: float = 0.0):
        self.c = controller
        self.budget = float(budget_w)
        self.sample_s = float(sample_s)
        self.delay = float(telemetry_delay_s)
        lat = min(controller.latency_s, controller.brake_latency_s) if controller.needs_telemetry else 1e9
        self.batch_s = max(self.sample_s, min(1.0, lat if lat > 0 else self.sample_s))
        self.next_sample = self.sample_s          # end of the next sample window
        self.meter = None
        self.samples = []                         # (time read, fraction)

    def bind(self, meter, class_servers):
        self.meter = meter

    def _advance(self, now):
        # sample windows ending at e, read at e + delay <= now; computed when a batch is due
        if not self.c.needs_telemetry or now + 1e-12 < self.next_sample + self.delay + self.batch_s - self.sample_s:
            return
        last = now - self.delay
        n = int((last - self.next_sample) // self.sample_s) + 1
        if n <= 0:
            return
        ends = self.next_sample + self.sample_s * np.arange(n)
        edges = np.concatenate([[ends[0] - self.sample_s], ends])
        fr = self.meter.row_wall_w(edges, tail=True) / self.budget
        for e, f in zip(ends.tolist(), fr.tolist()):
            self.c.observe(e + self.delay, f)
            self.samples.append((e + self.delay, f))
        self.next_sample = float(ends[-1] + self.sample_s)

    def at(self, now, priority):
        self._advance(now)
        return self.c.knobs(now, priority)
