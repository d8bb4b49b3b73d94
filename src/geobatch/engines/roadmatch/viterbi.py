"""Viterbi decoding of many hidden Markov chains at once.

Costs are negative log probabilities. Chains (one per input road and digitisation
direction) have layers of up to ``S`` states, padded with ``inf``; the recursion advances
all chains one layer per step (longest first, so the active chains are always a prefix), so
Python loops over the longest chain's length, not over roads or states. A chain may restart
at any layer for ``break_cost``, which is how gaps and off-network stretches are survived
(Newson & Krumm split the trace there; this keeps one decoding per road).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Decoded:
    """Per chain, its layers' best states laid end to end (chain c from ``start[c]``)."""

    start: np.ndarray  # (n_chains + 1,) int64 offsets into ``state`` and ``restart``
    state: np.ndarray  # int64, best state of each layer of each chain
    restart: np.ndarray  # bool, True where the chain broke just before the layer
    cost: np.ndarray  # (n_chains,) float, total cost of the best path


def decode(
    emission: np.ndarray,
    transition: np.ndarray,
    chain_layer: np.ndarray,
    chain_length: np.ndarray,
    chain_emission: np.ndarray,
    break_cost: float,
) -> Decoded:
    """Best paths.

    ``emission`` is (n_variants, n_layers, S); ``transition`` is (n_layers, S, S), entry
    [l, i, j] the cost from state i of layer l-1 to state j of layer l (unused for a chain's
    first layer). Chain c covers layers ``chain_layer[c] .. + chain_length[c]`` and scores
    them with emission variant ``chain_emission[c]``.
    """
    n_chains = len(chain_layer)
    n_states = emission.shape[2]
    start = np.zeros(n_chains + 1, dtype=np.int64)
    np.cumsum(chain_length, out=start[1:])
    state = np.full(int(start[-1]), -1, dtype=np.int64)
    restart = np.zeros(int(start[-1]), dtype=bool)
    cost = np.full(n_chains, np.inf)
    if n_chains == 0 or start[-1] == 0:
        return Decoded(start=start, state=state, restart=restart, cost=cost)
    # Longest first; chains without layers (roads with no candidates) are left out.
    order = np.argsort(-chain_length, kind="stable")
    order = order[chain_length[order] > 0]
    first, length, variant = chain_layer[order], chain_length[order], chain_emission[order]
    out = start[order]
    # back[out[c] + t, j]: previous state of state j at step t; -(i + 1) after a restart.
    back = np.zeros((int(start[-1]), n_states), dtype=np.int64)
    score = emission[variant, first].copy()
    rows = np.arange(len(order))
    for t in range(1, int(length[0])):
        # Lengths are sorted descending, so the chains still running are a prefix.
        active = int(np.searchsorted(-length, -t, side="left"))
        layer = first[:active] + t
        prev = score[:active]
        total = prev[:, :, None] + transition[layer]
        best_prev = np.argmin(total, axis=1)
        carried = np.take_along_axis(total, best_prev[:, None, :], axis=1)[:, 0, :]
        cheapest = np.argmin(prev, axis=1)
        restarted = prev[rows[:active], cheapest] + break_cost
        use_break = restarted[:, None] < carried
        back[out[:active] + t] = np.where(use_break, -(cheapest[:, None] + 1), best_prev)
        score[:active] = (
            np.where(use_break, restarted[:, None], carried) + emission[variant[:active], layer]
        )
    current = np.argmin(score, axis=1)
    final_cost = score[rows, current]
    for t in range(int(length[0]) - 1, -1, -1):
        idx = rows[: int(np.searchsorted(-length, -t, side="left"))]
        pos = out[idx] + t
        state[pos] = current[idx]
        if t == 0:
            break
        pointer = back[pos, current[idx]]
        broke = pointer < 0
        restart[pos[broke]] = True
        current[idx] = np.where(broke, -pointer - 1, pointer)
    cost[order] = final_cost
    return Decoded(start=start, state=state, restart=restart, cost=cost)
