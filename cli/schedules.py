"""`vtp schedule add|list|remove`: scheduled re-training as Prefect deployments.

A schedule is a deployment of the `train` flow with a fixed spec as its parameter, cloned from the
``train-<framework>`` deployment of the current environment (same pool, pull steps and job
variables), so it works unchanged on the process, kind and k8s targets. It is tagged ``scheduled``;
the ``train-*`` deployments themselves are never touched.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from core.errors import VtpError

FLOW_NAME = "train"
SCHEDULED_TAG = "scheduled"


def spec_from_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise VtpError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise VtpError(f"{path} should hold a mapping of TrainSpec fields")
    return data


def spec_from_run(client: Any, run_id: str) -> dict[str, Any]:
    """The spec a past flow run trained, so "do that again every night" is one command."""
    from uuid import UUID

    from prefect.exceptions import ObjectNotFound

    try:
        run = client.read_flow_run(UUID(run_id))
    except (ValueError, ObjectNotFound):
        raise VtpError(f"no flow run {run_id!r}: `vtp runs` lists recent runs with their ids") from None
    spec = (run.parameters or {}).get("spec")
    if not isinstance(spec, dict):
        raise VtpError(f"flow run {run_id} has no spec parameter: it is not a vtp training run")
    return spec


def make_schedule(*, cron: str | None = None, interval_s: float | None = None, timezone: str = "UTC",
                  anchor: dt.datetime | None = None, active: bool = False) -> Any:
    """One DeploymentScheduleCreate from a cron line or an interval (exactly one of them)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    if (cron is None) == (interval_s is None):
        raise VtpError("give exactly one of --cron '0 2 * * *' or --interval SECONDS")
    if cron is not None:
        try:
            schedule: Any = CronSchedule(cron=cron, timezone=timezone)
        except ValueError as e:
            raise VtpError(f"bad cron or timezone ({cron!r}, {timezone!r}): {e}") from None
    else:
        if interval_s is None or interval_s <= 0:
            raise VtpError("--interval must be a positive number of seconds")
        schedule = IntervalSchedule(interval=dt.timedelta(seconds=interval_s), timezone=timezone,
                                    anchor_date=anchor or dt.datetime.now(dt.UTC))
    return DeploymentScheduleCreate(schedule=schedule, active=active)


def add_schedule(client: Any, name: str, spec_data: dict[str, Any], schedule: Any,
                 description: str | None = None) -> Any:
    """Create (or replace) deployment ``train/<name>`` that trains ``spec_data`` on ``schedule``."""
    from prefect.exceptions import ObjectNotFound

    from core.spec import parse_spec

    if name.startswith("train-"):
        raise VtpError(f"{name!r}: names starting with train- belong to the framework deployments")
    spec = parse_spec(dict(spec_data))
    base_name = f"{FLOW_NAME}/train-{spec.framework}"
    try:
        base = client.read_deployment_by_name(base_name)
    except ObjectNotFound:
        raise VtpError(f"no deployment {base_name}: start the stack (`vtp up`) or run `prefect deploy --all` "
                       "for this environment first") from None
    _delete_if_exists(client, name)
    return client.create_deployment(
        flow_id=base.flow_id, name=name, description=description or f"scheduled {spec.model} on {spec.dataset}",
        schedules=[schedule], parameters={"spec": spec.model_dump(mode="json")},
        work_pool_name=base.work_pool_name, work_queue_name=base.work_queue_name,
        tags=sorted({*(base.tags or []), SCHEDULED_TAG}), path=base.path, entrypoint=base.entrypoint,
        parameter_openapi_schema=base.parameter_openapi_schema, pull_steps=base.pull_steps,
        enforce_parameter_schema=False, job_variables=base.job_variables,
    )


def list_schedules(client: Any) -> list[dict[str, Any]]:
    """Every deployment of the train flow that has a schedule (the framework ones normally have none)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    rows = []
    for dep in client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))):
        for sched in dep.schedules or []:
            s = sched.schedule
            when = getattr(s, "cron", None) or f"every {getattr(s, 'interval', '?')}"
            rows.append({"name": dep.name, "pool": dep.work_pool_name, "schedule": str(when),
                         "timezone": getattr(s, "timezone", None), "active": sched.active,
                         "spec": (dep.parameters or {}).get("spec")})
    return rows


def remove_schedule(client: Any, name: str) -> None:
    if name.startswith("train-"):
        raise VtpError(f"{name!r} is a framework deployment, not a schedule")
    if not _delete_if_exists(client, name):
        raise VtpError(f"no scheduled deployment {name!r}: `vtp schedule list` shows them")


def _delete_if_exists(client: Any, name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        dep = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
    except ObjectNotFound:
        return False
    client.delete_deployment(dep.id)
    return True


schedule_app = typer.Typer(help="Scheduled re-training: add, list, remove.", no_args_is_help=True)


def _client():
    from core.prefect_api import prefect_client
    from core.settings import apply_prefect_env

    apply_prefect_env()
    return prefect_client()


def _fail(e: VtpError) -> None:
    typer.secho(f"vtp: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@schedule_app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="Deployment name, e.g. nightly-shapes")],
    spec_file: Annotated[Path | None, typer.Option("--spec", help="A YAML/JSON TrainSpec")] = None,
    from_run: Annotated[str | None, typer.Option("--from-run", help="Re-train the spec of this flow run")] = None,
    cron: Annotated[str | None, typer.Option(help="Cron line, e.g. '0 2 * * *'")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between runs (instead of --cron)")] = None,
    timezone: Annotated[str, typer.Option(help="IANA timezone of the cron line")] = "UTC",
    anchor: Annotated[str | None, typer.Option(help="ISO time the interval counts from")] = None,
    active: Annotated[bool, typer.Option("--active/--paused", help="Paused unless --active")] = False,
) -> None:
    """Schedule a spec (from --spec or --from-run) on the framework's pool of this environment."""
    try:
        if (spec_file is None) == (from_run is None):
            raise VtpError("give exactly one of --spec FILE or --from-run RUN_ID")
        anchor_dt = dt.datetime.fromisoformat(anchor) if anchor else None
        schedule = make_schedule(cron=cron, interval_s=interval, timezone=timezone, anchor=anchor_dt,
                                 active=active)
        with _client() as client:
            data = spec_from_file(spec_file) if spec_file else spec_from_run(client, str(from_run))
            dep_id = add_schedule(client, name, data, schedule)
    except VtpError as e:
        _fail(e)
    state = "active" if active else "paused (resume: prefect deployment schedule resume)"
    typer.echo(f"scheduled deployment {FLOW_NAME}/{name} ({dep_id}), {state}")


@schedule_app.command("list")
def schedule_list() -> None:
    """Scheduled deployments of the train flow."""
    with _client() as client:
        rows = list_schedules(client)
    if not rows:
        typer.echo("no schedules: `vtp schedule add NAME --spec spec.yaml --cron '0 2 * * *'`")
    for r in rows:
        spec = r["spec"] or {}
        typer.echo(f"{r['name']:<24} {r['schedule']:<20} {str(r['timezone'] or ''):<12} "
                   f"{'active' if r['active'] else 'paused':<7} {r['pool']:<20} "
                   f"{spec.get('model')} on {spec.get('dataset')}")


@schedule_app.command("remove")
def schedule_remove(name: Annotated[str, typer.Argument(help="The scheduled deployment's name")]) -> None:
    """Delete a scheduled deployment (its past runs stay)."""
    try:
        with _client() as client:
            remove_schedule(client, name)
    except VtpError as e:
        _fail(e)
    typer.echo(f"removed {FLOW_NAME}/{name}")
