"""Routing plans: tokens grouped by role once per call, contiguous spans detected, no state left behind."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from mor.model import MoRConfigError
from mor.model.context import RoutingState, build_routing_plan


def test_plan_groups_tokens_by_role_and_detects_contiguous_spans() -> None:
    role_ids = torch.tensor([[0, 0, 1, 1], [2, 2, 0, 0]])
    plan = build_routing_plan(role_ids, 4)
    assert plan.num_tokens == 8 and plan.present_roles() == {0, 1, 2}
    by_role = {group.role: group for group in plan.groups}
    assert by_role[0].index is not None and by_role[0].index.tolist() == [0, 1, 6, 7]
    assert (by_role[1].index, by_role[1].start, by_role[1].stop) == (None, 2, 4)
    assert (by_role[2].index, by_role[2].start, by_role[2].stop) == (None, 4, 6)
    rows = torch.arange(8.0).unsqueeze(1)
    assert by_role[0].select(rows).squeeze(1).tolist() == [0, 1, 6, 7]
    single = build_routing_plan(torch.full((3, 5), 2), 3)
    assert len(single.groups) == 1 and single.groups[0].index is None and single.groups[0].count == 15


def test_plan_rejects_bad_role_ids() -> None:
    with pytest.raises(MoRConfigError, match=r"role_ids: got value 5, must be in 0..2"):
        build_routing_plan(torch.tensor([[0, 5]]), 3)
    with pytest.raises(MoRConfigError, match="role_ids: got an empty tensor"):
        build_routing_plan(torch.zeros(0, dtype=torch.long), 3)
    with pytest.raises(MoRConfigError, match="must be an integer tensor"):
        build_routing_plan(torch.tensor([[True]]), 3)


def test_activate_nests_and_clears_even_on_error() -> None:
    state = RoutingState()
    outer, inner = build_routing_plan(torch.tensor([0]), 2), build_routing_plan(torch.tensor([1]), 2)
    with state.activate(outer, record=True):
        with pytest.raises(ValueError):
            with state.activate(inner, record=False):
                assert state.current() is inner and not state.recording()
                raise ValueError
        assert state.current() is outer and state.recording()
    assert state.current() is None


def test_state_copies_and_pickles_as_a_fresh_state() -> None:
    state = RoutingState()
    with state.activate(build_routing_plan(torch.tensor([0]), 1), record=True):
        assert copy.deepcopy(state).current() is None
        assert pickle.loads(pickle.dumps(state)).current() is None
