"""Host-issued stacks: the host lane that issues a placed step's work (eager PyTorch, Hugging Face generate()).

`issue_from_host(tg, per_step)` writes a chain's replayed layers out one by one and puts, before every node, a
`host` node on the `host` lane that issues it (its duration is the host model's, hw_models/host.py, given to it
by the engine). Each device or link node then waits for its issue node and for the node before it on its own
queue; each host node waits for the host node before it. After an op that forces a host-device sync (the engine
says which, from the op's kernels) a `sync` host node waits for that op to finish, so the host cannot run ahead
of it. With `per_step` (generate()) a final host node holds the stopping check's sync and the host's own per-step
work. Nothing here is timed.

The engine runs such a graph in list order, each lane a FIFO queue (sim/schedule.py:run_in_order): the device
idles only when the host falls behind, as CUDA streams do.
"""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError

from .taskgraph import Lane, Node, TaskGraph

HOST_LANE = "host"


def issue_from_host(tg: TaskGraph, per_step: bool = False, syncs=frozenset()) -> TaskGraph:
    """`syncs`: ids of nodes whose ops force a sync (the engine asks the host model which ones do)."""
    if HOST_LANE in tg.lanes:
        return tg
    if not tg.is_chain():
        raise HwsimError(f"host-issued stacks (eager-launch, hf-generate) are modelled for one host driving a chain "
                         f"of ops (single, tp:N, dp:N, ep:N); mapping '{tg.strategy}' runs several programs at once, "
                         f"so use --profile eager or fused with it")
    tg = tg.unrolled()
    nodes, prev_host, prev_on = [], None, {}
    for n in tg.nodes:
        deps = (prev_host,) if prev_host else ()
        issue = Node(f"issue.{n.id}", "host", HOST_LANE, deps, program=n.program, ops=n.ops,
                     collective=n.collective if n.kind == "collective" else None, layer=n.layer,
                     label=f"issue {n.label or n.id}")
        nodes.append(issue)
        queue_prev = prev_on.get(n.lane)
        work = replace(n, deps=(issue.id,) + ((queue_prev,) if queue_prev else ()))
        nodes.append(work)
        prev_on[n.lane] = work.id
        prev_host = issue.id
        if n.id in syncs:             # the host reads a value back: it waits until this op has run
            wait = Node(f"sync.{n.id}", "host", HOST_LANE, (prev_host, work.id), rate="sync", label="sync")
            nodes.append(wait)
            prev_host = wait.id
    if per_step and nodes:
        last = [n.id for n in nodes if n.lane != HOST_LANE]
        nodes.append(Node("step", "host", HOST_LANE, (prev_host,) + tuple(sorted(set(last[-1:]))), rate="step",
                          label="generate step: stopping check (sync) and host work"))
    lanes = dict(tg.lanes, **{HOST_LANE: Lane("host", idle_power=False)})
    return tg.with_(nodes=tuple(nodes), lanes=lanes, info=dict(tg.info, host_issued=True))
