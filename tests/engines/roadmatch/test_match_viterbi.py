"""Viterbi decoding: cheapest paths of many chains at once, with restarts across gaps."""

from __future__ import annotations

import numpy as np

from geobatch.engines.roadmatch.viterbi import decode

INF = np.inf


def test_decodes_the_cheapest_path_not_the_cheapest_states() -> None:
    # Two states per layer; state 0 is nearer at layer 1 but cannot be reached cheaply.
    emission = np.array([[[0.0, 0.1], [0.0, 0.5], [0.0, 0.1]]])
    # Entry [l, j, i]: from state i of layer l - 1 into state j of layer l.
    transition = np.array(
        [
            [[0, 0], [0, 0]],
            [[9.0, 9.0], [0.0, 0.0]],  # into layer 1 state 0 costs 9
            [[0.0, 0.0], [9.0, 9.0]],
        ]
    )
    out = decode(emission, transition, np.array([0]), np.array([3]), np.array([0]), 100.0)
    assert out.state.tolist() == [0, 1, 0]
    assert out.cost[0] == 0.5
    assert not out.restart.any()


def test_restarts_where_no_transition_is_affordable() -> None:
    emission = np.array([[[0.0, INF], [0.0, INF]]])
    transition = np.array([[[0, 0], [0, 0]], [[INF, INF], [INF, INF]]])
    out = decode(emission, transition, np.array([0]), np.array([2]), np.array([0]), 5.0)
    assert out.restart.tolist() == [False, True]
    assert out.cost[0] == 5.0


def test_chains_of_different_lengths_and_emission_variants() -> None:
    # Layers 0-2 belong to road A, layer 3 to road B; variant 1 prefers state 1 everywhere.
    emission = np.array(
        [
            [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]],
            [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
        ]
    )
    transition = np.zeros((4, 2, 2))
    out = decode(
        emission,
        transition,
        chain_layer=np.array([0, 3, 0, 3]),
        chain_length=np.array([3, 1, 3, 1]),
        chain_emission=np.array([0, 0, 1, 1]),
        break_cost=10.0,
    )
    assert out.start.tolist() == [0, 3, 4, 7, 8]
    assert out.state.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert out.cost.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_chains_decoded_together_decode_as_each_would_alone() -> None:
    # Many chains, integer costs for ties, inf padding and dead ends.
    rng = np.random.default_rng(3)
    n_chains, layers, states = 96, 6, 5
    count = rng.integers(1, states + 1, (n_chains, layers))
    valid = np.arange(states) < count[..., None]
    emission = np.where(valid, rng.integers(0, 3, valid.shape), INF).reshape(1, -1, states)
    transition = rng.integers(0, 4, (n_chains, layers, states, states)).astype(float)
    transition[rng.uniform(size=transition.shape) < 0.3] = INF
    transition = transition.reshape(-1, states, states)
    lengths = rng.integers(1, layers + 1, n_chains)
    firsts = np.arange(n_chains) * layers
    together = decode(emission, transition, firsts, lengths, np.zeros(n_chains, int), 4.0)
    for c in range(n_chains):
        alone = decode(
            emission, transition, firsts[c : c + 1], lengths[c : c + 1], np.zeros(1, int), 4.0
        )
        span = slice(together.start[c], together.start[c + 1])
        assert together.state[span].tolist() == alone.state.tolist()
        assert together.restart[span].tolist() == alone.restart.tolist()
        assert together.cost[c] == alone.cost[0]
