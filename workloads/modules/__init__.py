"""Torch modules of a generic decoder-only LLM, built from a `ModelSpec`.

They are real, runnable torch code (small configs run on the CPU with real tensors);
the tracer runs them on the meta device to capture the operator graph.
"""
from ..step import Step
from .model import CausalLM

__all__ = ["CausalLM", "Step"]
