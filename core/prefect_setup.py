"""Prefect objects vtp needs: work pools named <framework>-<target>, created or updated."""

from __future__ import annotations

import copy
import sys
from typing import Any

from core.settings import Settings
from trainers.registry import frameworks


def process_job_template() -> dict[str, Any]:
    """Prefect's process template, with vtp's launcher as the default command: it starts runs
    from the warm zygote when one is up and falls back to `python -m prefect.engine` otherwise."""
    from prefect.workers.process import ProcessWorker

    template = copy.deepcopy(ProcessWorker.get_default_base_job_template())
    template["variables"]["properties"]["command"]["default"] = f"{sys.executable} -m core.launch"
    return template


def ensure_process_pools(settings: Settings) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    template = process_job_template()
    names = []
    with get_client(sync_client=True) as client:
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
