"""The process tree of a checkpoint, built defensively: the one function everyone uses.

``pstree.img`` is written from the container's own processes, so its shape
is the attacker's: a chain thousands of levels deep (``sh -c`` calling
itself), pid 0, a process that is its own parent, two processes that are each
other's parent, several roots. :func:`build_forest` turns any list of
(pid, ppid) pairs into a forest in which every entry appears exactly once,
and says what was wrong with the input in ``problems`` (sentences the caller
prefixes with the member they came from):

* ppid 0 means "no parent"; pid 0 is not a process id: such an entry is
  shown as a root, and no entry can be its child;
* a process that is its own parent is shown as a root;
* a parent pid that no entry has (outside the checkpoint) makes a root;
* more than one root is named (a container has one first process);
* a cycle of parents is cut at its smallest pid, which becomes a root.

Everything is linear in the number of entries (a children index built once,
one pass per entry) and iterative: nothing here recurses, so no depth of
tree can exhaust Python's recursion limit. :meth:`Forest.walk` yields the
tree in order and, past ``max_depth``, one :class:`Elided` per cut branch
(how many processes and levels, from which pid down to which), so that
renderers stay readable while the JSON of record keeps every process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MAX_DEPTH = 64
"""Levels the JSON, HTML and Markdown trees show before they elide a branch with a count."""
TERMINAL_DEPTH = 24
"""Levels a terminal tree shows (each level indents it by 4 columns)."""


def elision_text(processes: int, levels: int, first_pid: int, deepest_pid: int) -> str:
    """``… 1,036 more levels, 1,036 processes (pid 65 down to pid 1100)``."""
    more = f"{levels:,} more level{'s' if levels != 1 else ''}"
    procs = f"{processes:,} process{'es' if processes != 1 else ''}"
    return f"… {more}, {procs} (pid {first_pid} down to pid {deepest_pid})"


@dataclass(frozen=True)
class Elided:
    """A branch cut at ``depth``: ``processes`` processes over ``levels`` levels below the
    process at index ``parent``, from pid ``first_pid`` down to pid ``deepest_pid``."""

    depth: int
    parent: int
    processes: int
    levels: int
    first_pid: int
    deepest_pid: int
    indices: tuple[int, ...]  # the elided entries, in tree order

    def text(self) -> str:
        return elision_text(self.processes, self.levels, self.first_pid, self.deepest_pid)


@dataclass
class Forest:
    """Roots and children as indices into the (pid, ppid) list it was built from."""

    pids: list[int]
    roots: list[int] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def order(self) -> list[int]:
        """Every index once, parents before children, siblings (and roots) by pid."""
        return [i for _, i in self._preorder(self.roots, 0)]

    def subtree(self, index: int) -> list[int]:
        """``index`` and everything below it, in tree order."""
        return [i for _, i in self._preorder([index], 0)]

    def walk(self, max_depth: int | None = MAX_DEPTH) -> Iterator[tuple[int, int] | Elided]:
        """(depth, index) in tree order; a branch deeper than ``max_depth`` levels becomes
        one :class:`Elided` (``None``: never elide)."""
        stack: list[tuple[int, int]] = [(0, r) for r in reversed(self.roots)]
        while stack:
            depth, i = stack.pop()
            yield depth, i
            kids = self.children[i]
            if not kids:
                continue
            if max_depth is not None and depth + 1 >= max_depth:
                yield self._elide(depth + 1, i)
                continue
            stack.extend((depth + 1, k) for k in reversed(kids))

    def _preorder(self, starts: Sequence[int], depth: int) -> Iterator[tuple[int, int]]:
        stack = [(depth, r) for r in reversed(starts)]
        while stack:
            d, i = stack.pop()
            yield d, i
            stack.extend((d + 1, k) for k in reversed(self.children[i]))

    def _elide(self, depth: int, parent: int) -> Elided:
        below = list(self._preorder(self.children[parent], depth))
        deepest_depth, deepest = max(below, key=lambda item: item[0])
        return Elided(depth=depth, parent=parent, processes=len(below),
                      levels=deepest_depth - depth + 1,
                      first_pid=self.pids[below[0][1]], deepest_pid=self.pids[deepest],
                      indices=tuple(i for _, i in below))


def build_forest(pairs: Sequence[tuple[int, int]]) -> Forest:
    """The forest of ``pairs`` (pid, ppid), in which every entry appears once (module doc).

    A pid listed twice: the first entry is the parent its children hang under;
    the others still appear (the loader drops and warns about repeats first).
    """
    pids = [pid for pid, _ in pairs]
    n = len(pairs)
    first: dict[int, int] = {}
    for i, pid in enumerate(pids):
        first.setdefault(pid, i)
    forest = Forest(pids, children=[[] for _ in range(n)])
    problems = forest.problems
    parent = [-1] * n
    for i, (pid, ppid) in enumerate(pairs):
        if pid == 0:
            problems.append(f"pid 0 is not a process id (parent {ppid}); shown as a root")
        elif ppid == pid:
            problems.append(f"pid {pid} is its own parent; shown as a root")
        elif ppid != 0:
            j = first.get(ppid)
            if j is None:
                problems.append(f"pid {pid} has parent {ppid}, which is not in the checkpoint; "
                                "shown as a root")
            else:
                parent[i] = j
    by_pid = sorted(range(n), key=lambda i: (pids[i], i))
    for i in by_pid:  # children listed by pid, built once: linear, not a scan per process
        if parent[i] >= 0:
            forest.children[parent[i]].append(i)
        else:
            forest.roots.append(i)
    reached = [False] * n
    for _, i in forest._preorder(forest.roots, 0):
        reached[i] = True
    cut: list[int] = []
    for start in by_pid:  # what no root reaches hangs from a cycle of parents
        if reached[start]:
            continue
        path: dict[int, int] = {}  # index -> position on the path followed up
        i = start
        while i >= 0 and not reached[i] and i not in path:
            path[i] = len(path)
            i = parent[i]
        if i < 0 or reached[i]:  # cannot happen: a path up to a root would have been reached
            continue
        cycle = list(path)[path[i]:]
        head = min(cycle, key=lambda k: (pids[k], k))
        members = [pids[k] for k in cycle[cycle.index(head):] + cycle[:cycle.index(head)]]
        problems.append("pids " + " -> ".join(map(str, [*members, members[0]]))
                        + f" are each other's parents (a cycle); pid {pids[head]} shown as a root")
        forest.children[parent[head]].remove(head)
        parent[head] = -1
        cut.append(head)
        for _, k in forest._preorder([head], 0):
            reached[k] = True
    if cut:
        forest.roots = sorted([*forest.roots, *cut], key=lambda i: (pids[i], i))
    if len(forest.roots) > 1:
        shown = ", ".join(str(pids[i]) for i in forest.roots[:10])
        more = f" and {len(forest.roots) - 10:,} more" if len(forest.roots) > 10 else ""
        problems.append(f"{len(forest.roots):,} processes have no parent in the checkpoint "
                        f"(pids {shown}{more}); a container has one first process")
    return forest
