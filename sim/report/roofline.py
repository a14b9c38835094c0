"""Roofline data: per device, the ceilings and each op's (intensity, attained FLOP/s) point per phase."""
from __future__ import annotations

from dataclasses import dataclass, field

from workloads.graph import _span

from ..predict import predict

CEILING_DTYPES = ("bf16", "fp16", "fp8", "int8")


@dataclass
class DeviceRoofline:
    device: object
    predictions: dict                      # phase -> Prediction
    graphs: dict                           # phase -> OpGraph
    ceilings: dict = field(default_factory=dict)   # dtype -> peak FLOP/s
    bandwidth: float = 0.0                 # datasheet bytes/s
    attained_bandwidth: float = 0.0        # calibrated achievable bytes/s

    def layer_rows(self, phase: str) -> list:
        graph, pred = self.graphs[phase], self.predictions[phase]
        rows: dict = {}
        for op, r in zip(graph.ops, pred.ops):
            key = "outside layers" if op.group is None else f"layers {_span(graph.layer_groups[op.group])}"
            row = rows.setdefault(key, {"layers": key, "ops": 0, "flops": 0.0, "bytes": 0.0, "time_s": 0.0})
            row["ops"] += op.repeat
            row["flops"] += r["flops"] * op.repeat
            row["bytes"] += r["bytes"] * op.repeat
            row["time_s"] += r["total_time_s"]
        for row in rows.values():
            row["share"] = row["time_s"] / pred.latency_s if pred.latency_s else 0.0
            row["intensity"] = row["flops"] / row["bytes"] if row["bytes"] else None
        return list(rows.values())


def build(graphs: dict, devices: list, profile: str = "eager", host=None, host_speed=None) -> list:
    out = []
    for device in devices:
        preds = {phase: predict(g, device, profile, host=host, host_speed=host_speed) for phase, g in graphs.items()}
        ceilings = {dt: device.peak(dt) for dt in CEILING_DTYPES if device.peak(dt)}
        bw = device.main_memory.bandwidth_gbps * 1e9
        cal = device.calibration.params if device.calibration else {}
        out.append(DeviceRoofline(device, preds, graphs, ceilings, bw, bw * cal.get("bw_eff", 1.0)))
    return out


def to_json(rooflines: list) -> list:
    doc = []
    for r in rooflines:
        doc.append({
            "hardware": r.device.id, "name": r.device.name, "ceilings_flops": r.ceilings,
            "bandwidth_bytes_per_s": r.bandwidth, "attained_bandwidth_bytes_per_s": r.attained_bandwidth,
            "phases": {phase: {"summary": p.summary(), "ops": p.ops, "layers": r.layer_rows(phase)}
                       for phase, p in r.predictions.items()},
        })
    return doc
