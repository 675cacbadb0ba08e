"""Cells grouped into jobs for a cluster: each job is one run on one node. A cell and the cells that start
from its checkpoint (restoration's k and strategies) share a job, so the checkpoint is loaded on the node
that has it, one after the other, instead of one job (a pod start, a 70B load) per variant."""


def group(cells: list, key, parent_key, batch: bool = True) -> list[list]:
    """`cells` (parents before children, as a plan lists them) in jobs: with `batch`, each cell without a
    parent in a job of its own, joined by every cell that starts from it (or from a parent not among
    `cells`: those share one job); without, one job per cell."""
    if not batch:
        return [[c] for c in cells]
    jobs: dict = {}
    for c in cells:
        anchor = parent_key(c) if parent_key(c) is not None else key(c)
        jobs.setdefault(anchor, []).append(c)
    return list(jobs.values())


def needs(job: list, key, parent_key) -> set:
    """Keys of the parents this job waits for (cells of other jobs)."""
    own = {key(c) for c in job}
    return {parent_key(c) for c in job if parent_key(c) is not None and parent_key(c) not in own}
