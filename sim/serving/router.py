"""Routers: which replica of a pool a new request goes to (a registry, like the schedulers)."""
from __future__ import annotations

from workloads.errors import HwsimError

ROUTERS = {}


def router(name: str, description: str):
    def register(cls):
        cls.name, cls.description = name, description
        ROUTERS[name] = cls
        return cls
    return register


def make_router(name: str, seed: int = 0):
    if name not in ROUTERS:
        raise HwsimError(f"unknown router '{name}'; use one of {', '.join(ROUTERS)}")
    return ROUTERS[name](seed)


class Router:
    def __init__(self, seed: int = 0):
        self.seed = seed

    def pick(self, r, replicas):
        raise NotImplementedError


@router("round-robin", "replicas in turn")
class RoundRobin(Router):
    def __init__(self, seed=0):
        super().__init__(seed)
        self.next = 0

    def pick(self, r, replicas):
        rep = replicas[self.next % len(replicas)]
        self.next += 1
        return rep


def loads(replicas, t) -> list:
    """Outstanding tokens of each replica at time t (a replica in a run of decode steps reports the steps done)."""
    return [x.outstanding if x.plan is None or x.plan.extra_ends is None else x.outstanding_at(t) for x in replicas]


@router("least-tokens", "the replica with the fewest outstanding tokens (prompt and output tokens not yet processed)")
class LeastTokens(Router):
    def pick(self, r, replicas):
        load = loads(replicas, r.arrival)
        return replicas[load.index(min(load))]


@router("least-requests", "the replica with the fewest requests running or queued")
class LeastRequests(Router):
    def pick(self, r, replicas):
        return min(replicas, key=lambda x: (x.running + len(x.waiting) + len(x.incoming), x.id))


@router("prefix-affinity", "requests sharing a first prefix segment go to the same replica (its cache holds it), "
                           "unless that replica has over twice the mean outstanding tokens; else least tokens")
class PrefixAffinity(Router):
    def __init__(self, seed=0):
        super().__init__(seed)
        self.home = {}

    def pick(self, r, replicas):
        load = loads(replicas, r.arrival)
        least = replicas[load.index(min(load))]
        if not r.prefix:
            return least
        key = r.prefix[0][0]
        rep = self.home.get(key)
        mean = sum(load) / len(replicas)
        if rep is None or load[replicas.index(rep)] > 2 * mean + 1:
            rep = least
            self.home[key] = rep
        return rep
