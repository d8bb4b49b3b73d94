"""Viterbi decoding of many hidden Markov chains at once.

Costs are negative log probabilities. Chains (one per input road and digitisation
direction) have layers of up to ``S`` states, padded with ``inf``; the recursion advances
all chains one layer per step (longest first, so the active chains are always a prefix), so
Python loops over the longest chain's length, not over roads or states. The layers are laid out
step by step first (all chains' first layers, then all second layers ...), so that each step
reads and writes one contiguous block and does a dozen array operations, whatever its width:
on long roads, where a few chains run for hundreds of steps, that per-step cost is the cost.
A chain may restart at any layer for ``break_cost``, which is how gaps and off-network
stretches are survived (Newson & Krumm split the trace there; this keeps one decoding per
road).
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
    [l, j, i] the cost from state i of layer l-1 to state j of layer l (unused for a chain's
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
    steps = int(length[0])
    # Lengths are sorted descending, so the chains still running at step t are a prefix, of
    # ``running[t]`` chains; entry ``block[t] + c`` of the step-major arrays is chain c's
    # layer at step t.
    running = np.searchsorted(-length, -np.arange(steps), side="left")
    block = np.zeros(steps + 1, dtype=np.int64)
    np.cumsum(running, out=block[1:])
    step_of = np.repeat(np.arange(steps), running)
    chain_of = np.arange(int(block[-1])) - block[step_of]
    layer = first[chain_of] + step_of
    # One gather of whole rows (numpy's two-array indexing is several times slower).
    n_layers = emission.shape[1]
    scores = np.take(emission.reshape(-1, n_states), variant[chain_of] * n_layers + layer, axis=0)
    # States are padded with inf at the end of a layer: each step reads only as many states
    # as the widest layer of its block (and of the block before) has.
    finite = np.isfinite(scores)
    last = np.where(finite.any(axis=1), n_states - np.argmax(finite[:, ::-1], axis=1), 1)
    width = np.maximum.reduceat(last, block[:-1]).tolist()
    # back[block[t] + c, j]: previous state of chain c's state j at step t (after a restart,
    # the cheapest previous state, and broke_into[block[t] + c, j] is set).
    back = np.zeros((int(block[-1]), n_states), dtype=np.int64)
    broke_into = np.zeros((int(block[-1]), n_states), dtype=bool)
    score = scores[: running[0]].copy()
    bounds = block.tolist()
    # Columns past a step's width are left as they were (the next step reads no further);
    # a chain's last step's width masks them out of its final choice.
    for t in range(1, steps):
        lo, hi = bounds[t], bounds[t + 1]
        into, out_of = width[t - 1], width[t]
        now = score[: hi - lo]
        prev = now[:, :into]
        best_prev, carried = _cheapest_into(prev, transition[layer[lo:hi], :out_of, :into])
        cheapest = prev.argmin(axis=1)
        restarted = prev[np.arange(len(prev)), cheapest]
        restarted += break_cost
        use_break = restarted[:, None] < carried
        back[lo:hi, :out_of] = np.where(use_break, cheapest[:, None], best_prev)
        broke_into[lo:hi, :out_of] = use_break
        np.minimum(carried, restarted[:, None], out=carried)
        np.add(carried, scores[lo:hi, :out_of], out=now[:, :out_of])
    final_width = np.asarray(width)[length - 1]
    score[np.arange(n_states) >= final_width[:, None]] = np.inf
    current = score.argmin(axis=1)
    final_cost = score[np.arange(len(order)), current]
    # Back along the pointers, step by step, as flat indices into ``back``: states land in
    # step-major order, and the restarts are read off the chosen states at the end.
    row = np.arange(int(block[-1]), dtype=np.int64) * n_states
    flat_back = back.reshape(-1)
    picked = np.empty(int(block[-1]), dtype=np.int64)
    for t in range(steps - 1, 0, -1):
        lo, hi = bounds[t], bounds[t + 1]
        now = current[: hi - lo]
        picked[lo:hi] = now
        np.take(flat_back, row[lo:hi] + now, out=now)
    picked[: bounds[1]] = current[: bounds[1]]
    where = start[order][chain_of] + step_of
    state[where] = picked
    restart[where] = broke_into.reshape(-1)[row + picked]
    cost[order] = final_cost
    return Decoded(start=start, state=state, restart=restart, cost=cost)


def _cheapest_into(prev: np.ndarray, transition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per chain and state j, the cheapest previous state i of ``prev[c, i] + transition[c, j,
    i]`` (the first at equal cost) and that cost. Previous states run along the last axis, so
    that each reduction is over contiguous rows (numpy's fast path), not across them."""
    transition += prev[:, None, :]
    best = transition.argmin(axis=2)
    # The minimum is read at the argmin: numpy's min over a short last axis is much slower.
    row = np.arange(0, transition.size, transition.shape[2])
    return best, transition.reshape(-1)[row + best.reshape(-1)].reshape(best.shape)
