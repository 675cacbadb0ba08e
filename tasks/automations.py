"""The server's side of a sweep that survives its nodes: two Prefect automations, created (or brought up
to date) by `ftscope submit` and `retry`.

1. A run of ftscope's flows whose heartbeats stop for `cluster.lost_after_s` is marked Crashed: its worker
   or node is gone (Prefect's own recipe for zombie runs; workers send a heartbeat every
   PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds, 180 by default, at least 30).
2. A study run that crashed is scheduled again (AwaitingRetry): the next live worker of the pool picks it
   up, the store says what is done, the cell runs still in flight are adopted (tasks/dispatch.py). The
   study flow itself stops after `cluster.study_restarts` resumptions.
"""

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

FLOWS = ["study", "cell", "prepare"]
CRASH = "ftscope: crash runs whose node was lost"
RESUME = "ftscope: resume crashed studies"


def _ftscope_runs(flows: list[str]) -> dict:
    return {"match": ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            "match_related": ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": flows})}


def wanted(lost_after_s: float) -> list[Automation]:
    crash = Automation(
        name=CRASH, description="ftscope: a run of study, cell or prepare whose heartbeats stopped is Crashed",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=timedelta(seconds=lost_after_s), **_ftscope_runs(FLOWS)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {lost_after_s:.0f} s: its "
                                    f"worker or node was lost")])
    resume = Automation(
        name=RESUME, description="ftscope: a study run that crashed is scheduled again on a live worker",
        trigger=EventTrigger(expect={"prefect.flow-run.Crashed"}, for_each={"prefect.resource.id"},
                             posture=Posture.Reactive, threshold=1, **_ftscope_runs(["study"])),
        actions=[ChangeFlowRunState(state=StateType.SCHEDULED, name="AwaitingRetry", force=True,
                                    message="resumed after a crash: the store says what is done")])
    return [crash, resume]


def ensure_automations(lost_after_s: float) -> list[str]:
    """Create the two automations, or update them to this `lost_after_s`; the names of those changed."""
    changed = []
    for a in wanted(lost_after_s):
        try:
            have = Automation.read(name=a.name)
        except ValueError:
            a.create()
            changed.append(a.name)
            continue
        if have.trigger.model_dump() != a.trigger.model_dump() or \
                [x.model_dump() for x in have.actions] != [x.model_dump() for x in a.actions]:
            have.trigger, have.actions = a.trigger, a.actions
            have.update()
            changed.append(a.name)
    return changed
