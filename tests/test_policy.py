"""Prefect retries a cell only when its failure is worth retrying."""

from prefect import flow, task

from ftscope.train.launcher import CollectiveFailure, OutOfMemory
from tasks.policy import worth_retrying

attempts: dict[str, int] = {}


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=worth_retrying)
def flaky(kind: str):
    attempts[kind] = attempts.get(kind, 0) + 1
    if kind == "collective" and attempts[kind] == 1:
        raise CollectiveFailure("Watchdog caught collective operation timeout")
    if kind == "oom":
        raise OutOfMemory("CUDA out of memory")
    return attempts[kind]


@flow
def run(kind: str):
    return flaky(kind, return_state=True)


def test_collective_failures_are_retried_and_out_of_memory_is_not(prefect_harness):
    assert run("collective", return_state=True).is_completed() and attempts["collective"] == 2
    assert run("oom", return_state=True).is_failed() and attempts["oom"] == 1
