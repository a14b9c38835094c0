"""Pipeline-parallel replicas with several batches in flight: vLLM's virtual engines (pp:N,mb:N).

vLLM v0 runs a pipeline-parallel deployment of N stages as N virtual engines: N schedulers, each with 1/N of the
KV blocks (vllm/core/scheduler.py, Scheduler.__init__: `num_gpu_blocks //= pipeline_parallel_size`), a new request
going to the one with the fewest unfinished requests (vllm/engine/llm_engine.py, `_add_processed_request`:
`min_cost_scheduler = self.scheduler[costs.index(min(costs))]`). Each engine steps its own batch through the N
stages and plans its next step once the last stage has produced its tokens, so up to N batches are in flight, each
stage busy with a different one.

Here each virtual engine is a `Replica` with its own scheduler and KV blocks; the engines of one replica share a
`Pipeline`: the time at which each stage is next free. An engine's iteration (costed as one batch through every
stage by `StepCost`; `stage_times` splits it into stage times, the layers evenly and the LM head on the last
stage, and the sends between them) enters stage s
when it has left stage s - 1 and stage s has finished the batches that entered before it (stages serve batches in
the order they arrived, as a pipeline does). So a lone engine sees the plain pipeline step (fill and drain every
iteration) and N busy engines reach the stage-time-limited throughput. Energy: an iteration's own work on its
stages (`StepCost` with idle_stage_w 0) plus static power on one stage's devices (its share of the replica) while
it waits for a stage; an engine with no work is idle like a replica (metrics.py), on its share of the devices.
"""
from __future__ import annotations


class Pipeline:
    """The stages of one pipeline-parallel replica, shared by its virtual engines."""

    def __init__(self, stages: int):
        self.free = [0.0] * stages          # when each stage has finished every batch that entered it so far

    def run(self, now: float, stage_s, send_s: float) -> float:
        """Reserve the stages for a batch entering stage 0 at `now` or later (`stage_s`: its seconds on each stage);
        returns when it leaves the last."""
        t = now
        last = len(self.free) - 1
        for s in range(last + 1):
            t = max(t, self.free[s]) + stage_s[s]
            self.free[s] = t
            if s < last:
                t += send_s
        return t


class EngineGroup:
    """One replica's virtual engines as the outer router sees them (its loads summed)."""

    def __init__(self, gid: int, engines: list):
        self.id = gid
        self.engines = engines
        self.plan = None                    # the engines do not run decode steps as one event (Replica.start)

    @property
    def outstanding(self):
        return sum(e.outstanding for e in self.engines)

    @property
    def running(self):
        return sum(e.running for e in self.engines)

    @property
    def waiting(self):
        return range(sum(len(e.waiting) for e in self.engines))

    @property
    def incoming(self):
        return range(sum(len(e.incoming) for e in self.engines))


class EngineRouter:
    """The pool's router picks a replica (an `EngineGroup`); vLLM's rule picks its engine: the fewest unfinished
    requests (running, queued or arriving), the first on ties."""

    def __init__(self, outer, groups: list):
        self.outer = outer
        self.groups = groups

    def pick(self, r, replicas):
        group = self.outer.pick(r, self.groups)
        return min(group.engines, key=lambda e: (e.running + len(e.waiting) + len(e.incoming), e.id))
