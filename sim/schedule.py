"""The list scheduler of the engine: tasks on named resources, run by simpy.

Each task needs one resource (an NPU, a PIM unit, a link ...), or a tuple of them held together (an NPU
reading over a memory bus that a PIM also needs), for a duration and starts when the tasks it depends on
have finished and its resources are free (a task needing several waits until all are free at once,
holding none meanwhile). Schedules such as NeuPIMs' sub-batch interleaving are expressed as
dependencies; the engine finds the overlap. Where several ready tasks wait for one resource the lowest
`priority` goes first (then the earliest ready): a list scheduler's pick rule.
"""
from __future__ import annotations

import simpy

from mapping.taskgraph import Task


def run_chain(tasks: list) -> dict:
    """A chain (each task waits for the one before it only): starts are running sums, nothing overlaps."""
    spans, busy, now = {}, {}, 0.0
    for t in tasks:
        spans[t.name] = (now, now + t.duration)
        for r in ((t.resource,) if isinstance(t.resource, str) else t.resource):
            busy[r] = busy.get(r, 0.0) + t.duration
        now += t.duration
    return {"makespan": now, "busy": busy, "spans": spans}


def run_tasks(tasks: list) -> dict:
    """Makespan, busy time per resource and (start, end) per task."""
    env = simpy.Environment()
    needs = {t.name: sorted({t.resource} if isinstance(t.resource, str) else set(t.resource)) for t in tasks}
    resources = {r: simpy.PriorityResource(env, capacity=1) for names in needs.values() for r in names}
    done = {t.name: env.event() for t in tasks}
    spans, busy = {}, {name: 0.0 for name in resources}

    changed = [env.event()]                       # fires whenever a task gives its resources back

    def take_all(names, priority):
        """A multi-resource task waits until all are free at once (holding none while it waits)."""
        while not all(resources[r].count < resources[r].capacity for r in names):
            yield changed[0]
        held = [(r, resources[r].request(priority=priority)) for r in names]
        yield simpy.AllOf(env, [req for _, req in held])
        return held

    def run(task):
        if task.deps:
            yield simpy.AllOf(env, [done[d] for d in task.deps])
        names = needs[task.name]
        if len(names) == 1:
            req = resources[names[0]].request(priority=task.priority)
            yield req
            held = [(names[0], req)]
        else:
            held = yield env.process(take_all(names, task.priority))
        start = env.now
        yield env.timeout(task.duration)
        spans[task.name] = (start, env.now)
        for r, req in held:
            busy[r] += task.duration
            resources[r].release(req)
        fired, changed[0] = changed[0], env.event()
        fired.succeed()
        done[task.name].succeed()

    for task in tasks:
        env.process(run(task))
    env.run()
    return {"makespan": env.now, "busy": busy, "spans": spans}


def task_events(tasks: list, run: dict, process: str = "") -> list:
    """Chrome/Perfetto trace events of a task-graph run: one row per resource, one slice per task."""
    events = []
    for t in tasks:
        start, end = run["spans"][t.name]
        names = [t.resource] if isinstance(t.resource, str) else sorted(t.resource)
        for r in names:
            events.append({"name": t.name, "ph": "X", "pid": process or r, "tid": r,
                           "ts": start * 1e6, "dur": (end - start) * 1e6})
    return events


def task_power(tasks: list, run: dict, watts: dict, idle_w: dict) -> list:
    """Power over time per resource: (resource, start_s, end_s, watts, 1) for each task in `watts` (task name ->
    W while it runs), and the resource's `idle_w` in the gaps between them up to the makespan."""
    by_resource = {}
    for t in tasks:
        if t.name in watts and isinstance(t.resource, str):
            by_resource.setdefault(t.resource, []).append((*run["spans"][t.name], watts[t.name]))
    segments = []
    for r, spans in by_resource.items():
        now = 0.0
        for start, end, w in sorted(spans):
            if start > now:
                segments.append((r, now, start, idle_w.get(r, 0.0), 1))
            segments.append((r, start, end, w, 1))
            now = max(now, end)
        if run["makespan"] > now:
            segments.append((r, now, run["makespan"], idle_w.get(r, 0.0), 1))
    return segments
