"""A task graph on named resources, run by simpy: the heterogeneous side of the simulator.

Each task needs one resource (an NPU, a PIM unit, a link ...) for a duration and starts when the tasks it
depends on have finished and its resource is free. Schedules such as NeuPIMs' sub-batch interleaving are
expressed as dependencies; the engine finds the overlap. Where several ready tasks wait for one resource
the lowest `priority` goes first (then the earliest ready): a list scheduler's pick rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy


@dataclass
class Task:
    name: str
    resource: str
    duration: float
    deps: list = field(default_factory=list)     # names of tasks that must finish first
    priority: float = 0.0                          # among tasks waiting for one resource, lower goes first


def run_tasks(tasks: list) -> dict:
    """Makespan, busy time per resource and (start, end) per task."""
    env = simpy.Environment()
    resources = {t.resource: simpy.PriorityResource(env, capacity=1) for t in tasks}
    done = {t.name: env.event() for t in tasks}
    spans, busy = {}, {name: 0.0 for name in resources}

    def run(task):
        if task.deps:
            yield simpy.AllOf(env, [done[d] for d in task.deps])
        with resources[task.resource].request(priority=task.priority) as req:
            yield req
            start = env.now
            yield env.timeout(task.duration)
            spans[task.name] = (start, env.now)
            busy[task.resource] += task.duration
        done[task.name].succeed()

    for task in tasks:
        env.process(run(task))
    env.run()
    return {"makespan": env.now, "busy": busy, "spans": spans}
