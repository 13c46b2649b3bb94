"""Where a value of a torch.export graph flows, for the walk (trace.py): only into the ops that
read it as a norm or a split (then the norm's gain may fold into the links entering it), or
only into attention patterns (then a cut on its way costs no links: q and k have in-links only)."""

from __future__ import annotations

import heapq

from .fx_nodes import ARITHMETIC, ATTENTION, SHAPED_LIKE, SOFTMAX, VIEWS, op_name, operands


def only_into(head, consumers, position: dict, is_param) -> bool:
    """Does everything computed from `head` flow only into the consumers, through views, dropout,
    activations and arithmetic of these values alone (a norm written by hand: the value times
    rsqrt(mean(value^2) + eps))? position: each graph node's place in the graph's order."""
    reached, waiting = set(), [(position[head], head)]
    while waiting:  # in graph order: an op is checked once every operand reached from head is
        value = heapq.heappop(waiting)[1]
        if value in reached:
            continue
        if value is not head and not _of_reached(value, reached, is_param):
            return False
        reached.add(value)
        for user in value.users:
            if user not in consumers and not _gives_only_type(value, user):
                heapq.heappush(waiting, (position[user], user))
    return True


def pattern_only(graph) -> dict:
    """Per graph node: does its value flow only into attention patterns (q and k of attention,
    scores before their softmax), through whatever ops?"""
    found = {}
    for node in reversed(graph.nodes):
        found[node] = bool(node.users) and all(_into_pattern(node, user, found) for user in node.users)
    return found


def _of_reached(node, reached: set, is_param) -> bool:
    """Is this op a view, a one-input map, or arithmetic of reached values (and parameters)?"""
    values = operands(node)
    return op_name(node) in VIEWS or len(values) == 1 or op_name(node) in ARITHMETIC and \
        all(a in reached or is_param(a) for a in values)


def _gives_only_type(value, user) -> bool:
    """`x.type_as(value)`, `x.reshape_as(value)`: value gives x its type or shape, not its values;
    `_assert_*`: checked only."""
    op = op_name(user)
    return op in SHAPED_LIKE and user.args[0] is not value or op.startswith("_assert")


def _into_pattern(value, user, found: dict) -> bool:
    op = op_name(user)
    if _gives_only_type(value, user) or op in SOFTMAX:
        return True
    if op in ATTENTION:
        return value is not user.args[2]  # q, k or the mask; not v
    return found.get(user, False)
