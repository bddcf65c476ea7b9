"""build_forest, the one process-tree builder: every entry placed once, whatever pstree says.

These pin down its exact answers; tests/archive/test_process_trees.py and
tests/capture/test_deep_tree.py drive the same shapes through real archives and csi.
"""

from __future__ import annotations

from forensics.archive.proctree import Elided, build_forest


def pids_in_order(pairs: list[tuple[int, int]]) -> list[int]:
    forest = build_forest(pairs)
    return [forest.pids[i] for i in forest.order()]


def test_a_well_formed_tree_has_no_problems_and_orders_siblings_by_pid() -> None:
    forest = build_forest([(1, 0), (22, 1), (7, 1), (9, 7)])
    assert forest.problems == []
    assert [forest.pids[i] for i in forest.order()] == [1, 7, 9, 22]
    assert list(forest.walk()) == [(0, 0), (1, 2), (2, 3), (1, 1)]


def test_two_disjoint_cycles_are_each_cut_at_their_smallest_pid() -> None:
    forest = build_forest([(1, 0), (30, 20), (20, 10), (10, 30), (5, 6), (6, 5), (40, 20)])
    assert forest.problems == [
        "pids 5 -> 6 -> 5 are each other's parents (a cycle); pid 5 shown as a root",
        "pids 10 -> 30 -> 20 -> 10 are each other's parents (a cycle); pid 10 shown as a root",
        "3 processes have no parent in the checkpoint (pids 1, 5, 10); a container has one "
        "first process"]
    assert pids_in_order([(1, 0), (30, 20), (20, 10), (10, 30), (5, 6), (6, 5), (40, 20)]) \
        == [1, 5, 6, 10, 20, 30, 40]


def test_a_pid_listed_twice_still_appears_twice() -> None:
    assert pids_in_order([(1, 0), (7, 1), (7, 1), (9, 7)]) == [1, 7, 9, 7]


def test_a_chain_deeper_than_max_depth_is_elided_with_a_count() -> None:
    chain = [(1, 0)] + [(i, i - 1) for i in range(2, 1102)]
    forest = build_forest(chain)
    steps = list(forest.walk(64))
    assert steps[:64] == [(d, d) for d in range(64)]
    cut = steps[64]
    assert isinstance(cut, Elided) and len(steps) == 65
    assert (cut.depth, cut.parent, cut.processes, cut.levels, cut.first_pid, cut.deepest_pid) \
        == (64, 63, 1037, 1037, 65, 1101)
    assert cut.indices == tuple(range(64, 1101))
    assert cut.text() == "… 1,037 more levels, 1,037 processes (pid 65 down to pid 1101)"
    assert len(list(forest.walk(None))) == 1101


def test_a_wide_branch_below_the_cut_counts_processes_and_levels_apart() -> None:
    pairs = [(1, 0), (2, 1), (3, 2), (10, 3), (11, 3), (12, 11)]
    cut = list(build_forest(pairs).walk(3))[-1]
    assert isinstance(cut, Elided)
    assert cut.text() == "… 2 more levels, 3 processes (pid 10 down to pid 12)"
