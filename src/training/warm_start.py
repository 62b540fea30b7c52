"""Start a new generator from a trained one whose inputs were fewer (e.g. v1: molmap only, no resolution)."""
from __future__ import annotations

import torch

from ..errors import WeightsError
from ..network import Generator
from ..weights_io import load_weights


def warm_start(generator: Generator, weights_path: str) -> str:
    """Copy the weights at ``weights_path`` into ``generator``; return a one-line account.

    Tensors of equal shape are copied. A first-layer kernel with fewer input
    channels fills the first channels and leaves zeros for the new ones, and
    layers the old generator lacks (FiLM) keep their identity start: the new
    generator begins by computing exactly what the old one did.
    """
    previous = load_weights(weights_path).generator
    if tuple(previous.widths) != tuple(generator.widths):
        raise WeightsError(f"The weights to start from, {weights_path}, have widths "
                           f"{' '.join(map(str, previous.widths))}, not the {' '.join(map(str, generator.widths))} "
                           "of the generator to train: train with those widths.")
    old = previous.state_dict()
    state = generator.state_dict()
    copied, widened = 0, 0
    for key, value in old.items():
        if key not in state:
            raise WeightsError(f"The weights to start from, {weights_path}, have a parameter {key} the new "
                               "generator lacks.")
        target = state[key]
        if target.shape == value.shape:
            target.copy_(value)
            copied += 1
        elif target.dim() == 5 and target.shape[0] == value.shape[0] and target.shape[2:] == value.shape[2:] \
                and target.shape[1] > value.shape[1]:
            target.zero_()
            target[:, :value.shape[1]] = value
            widened += 1
        else:
            raise WeightsError(f"The weights to start from, {weights_path}, have a {key} of shape "
                               f"{tuple(value.shape)}, which cannot start one of shape {tuple(target.shape)}.")
    with torch.no_grad():
        generator.load_state_dict(state)
    fresh = len(state) - copied - widened
    return (f"started from {weights_path}: {copied} tensors copied, {widened} widened for new input channels, "
            f"{fresh} new (identity start)")
