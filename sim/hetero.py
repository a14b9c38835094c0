"""A task graph on named resources, run by simpy: the heterogeneous side of the simulator.

Each task needs one resource (an NPU, a PIM unit, a link ...), or a tuple of them held together (an NPU
reading over a memory bus that a PIM also needs), for a duration and starts when the tasks it depends on
have finished and its resources are free (taken in name order, so two tasks never wait on each other). Schedules such as NeuPIMs' sub-batch interleaving are
expressed as dependencies; the engine finds the overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy


@dataclass
class Task:
    name: str
    resource: object          # a name, or a tuple of names held together
    duration: float
    deps: list = field(default_factory=list)     # names of tasks that must finish first


def run_tasks(tasks: list) -> dict:
    """Makespan, busy time per resource and (start, end) per task."""
    env = simpy.Environment()
    needs = {t.name: sorted({t.resource} if isinstance(t.resource, str) else set(t.resource)) for t in tasks}
    resources = {r: simpy.Resource(env, capacity=1) for names in needs.values() for r in names}
    done = {t.name: env.event() for t in tasks}
    spans, busy = {}, {name: 0.0 for name in resources}

    def run(task):
        if task.deps:
            yield simpy.AllOf(env, [done[d] for d in task.deps])
        held = []
        for r in needs[task.name]:
            req = resources[r].request()
            yield req
            held.append((r, req))
        start = env.now
        yield env.timeout(task.duration)
        spans[task.name] = (start, env.now)
        for r, req in held:
            busy[r] += task.duration
            resources[r].release(req)
        done[task.name].succeed()

    for task in tasks:
        env.process(run(task))
    env.run()
    return {"makespan": env.now, "busy": busy, "spans": spans}
