"""Prefect objects vtp needs: work pools named <framework>-<target>, created or updated."""

from __future__ import annotations

import copy
import sys
from typing import Any

from core.frameworks import frameworks
from core.prefect_api import prefect_api, prefect_client
from core.settings import Settings


def process_job_template() -> dict[str, Any]:
    """Prefect's process template with vtp's launcher as a fixed command: it starts runs from the
    warm zygote when one is up and falls back to `python -m prefect.engine` otherwise.

    ``command`` and ``working_dir`` are not pool variables, so no deployment or flow run can set
    them through ``job_variables`` (a `command` there ran any program on the worker; a
    `working_dir` holding a `cli/launch.py` would run that, since `python -m` imports from the
    current folder). Values given for them are ignored (issue 13, docs/security.md)."""
    from prefect.workers.process import ProcessWorker

    template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
    for name in ("command", "working_dir"):
        template["variables"]["properties"].pop(name, None)
        if name in template["variables"].get("required", []):
            template["variables"]["required"].remove(name)
    template["job_configuration"]["command"] = f"{sys.executable} -m cli.launch"
    template["job_configuration"]["working_dir"] = None
    return template


def ensure_process_pools(settings: Settings) -> list[str]:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    template = process_job_template()
    names = []
    with prefect_client(settings) as client:
        for fw in frameworks():
            name = settings.pool_name(fw)
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type="process", base_job_template=template,
                    description=f"vtp {fw} trainers on this machine",
                ))
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
            names.append(name)
    return names


ZOMBIE_AUTOMATION = "vtp: crash zombie flow runs"
HEARTBEAT_S = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY for every flow run vtp starts
ZOMBIE_AFTER_S = 90  # three missed heartbeats


def ensure_zombie_automation(settings: Settings) -> str:
    """Prefect's recipe for zombie flow runs: after a flow-run heartbeat, expect another heartbeat
    (or an end state) within 90 s; otherwise mark the run Crashed, so its retries and our API
    see it. Flow runs emit heartbeats because `vtp up` sets PREFECT_FLOWS_HEARTBEAT_FREQUENCY."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with prefect_api(settings):
        try:
            return str(Automation.read(name=ZOMBIE_AUTOMATION).id)
        except ValueError:  # not there yet
            pass
        automation = Automation(
            name=ZOMBIE_AUTOMATION,
            description="Created by `vtp up`: flow runs that stop sending heartbeats are marked Crashed.",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                        "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=ZOMBIE_AFTER_S),
            ),
            actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                        message="vtp: no heartbeat from this flow run for 90 s (machine or worker lost)")],
        )
        return str(automation.create().id)


RETRY_AUTOMATION = "vtp: retry crashed training runs"


def ensure_crash_retry_automation(settings: Settings) -> str:
    """When a training flow run that came from a deployment crashes (its process was killed, its
    machine or worker lost, or the API found it stale), schedule it again: the retried attempt
    resumes from the run's last uploaded checkpoint. The flow itself stops after VTP_CRASH_RETRIES
    attempts (it fails, which this automation leaves alone), and waits with backoff before each."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with prefect_api(settings):
        try:
            return str(Automation.read(name=RETRY_AUTOMATION).id)
        except ValueError:  # not there yet
            pass
        automation = Automation(
            name=RETRY_AUTOMATION,
            description="Created by `vtp up`: crashed `train` flow runs of a deployment are scheduled again and "
                        "resume from their last checkpoint (VTP_CRASH_RETRIES bounds the attempts).",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Crashed"},
                match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
                match_related=[
                    ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": "train"}),
                    ResourceSpecification({"prefect.resource.role": "deployment"}),  # a worker can pick it up
                ],
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[ChangeFlowRunState(state=StateType.SCHEDULED, name="AwaitingRetry",
                                        message="vtp: retrying after a crash; resumes from the last checkpoint")],
        )
        return str(automation.create().id)


def ensure_pool_slots(settings: Settings) -> dict[str, int]:
    """One Prefect global concurrency limit per training pool (VTP_POOL_SLOTS runs at once, e.g. the
    GPUs of a machine); created or updated to the setting, made inactive (no limit) when it is 0."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    from tasks.train_steps import slot_limit_name

    limits: dict[str, int] = {}
    with prefect_client(settings) as client:
        for fw in frameworks():
            name = slot_limit_name(settings.pool_name(fw))
            active = settings.pool_slots > 0
            limit = max(settings.pool_slots, 1)
            try:
                client.read_global_concurrency_limit_by_name(name)
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=active))
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit,
                                                                                    active=active))
            limits[name] = settings.pool_slots
    return limits
