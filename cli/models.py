"""`vtp models`: the model registry through the vtp API (api.registry).

    vtp models promote RUN --name forklift-detector --alias production [--export onnx]
    vtp models list
    vtp models show forklift-detector[@production|@v3]
    vtp models alias forklift-detector production v3
    vtp models unalias forklift-detector staging
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from core.errors import VtpError

models_app = typer.Typer(help="The model registry: promote runs to named, versioned models; move aliases.",
                         no_args_is_help=True)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    from cli.submit import api_call
    from core.settings import get_settings

    try:
        return api_call(get_settings(), method, path, **kwargs)
    except VtpError as e:
        typer.secho(f"vtp: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def describe_version(v: dict[str, Any]) -> str:
    """One line: name vN [aliases] format, run, main metric (named, with its value), dataset version."""
    from core.metric_names import metric_name

    record = v.get("record") or {}
    main = record.get("main_metric") or {}
    metric = f"{metric_name(main['name'])} {main['value']:.4f}" if main.get("value") is not None else "no metric"
    run = (record.get("run") or {}).get("name") or (v.get("run_id") or "")[:8]
    dataset = (record.get("dataset") or {}).get("ref") or (record.get("spec") or {}).get("dataset") or "-"
    aliases = f" [{', '.join(v['aliases'])}]" if v.get("aliases") else ""
    return f"{v['name']} v{v['version']}{aliases}  {v['format']}  run {run}  {metric}  dataset {dataset}"


@models_app.command("promote")
def promote(
    run: Annotated[str, typer.Argument(help="The run: its id, an 8+ character prefix or its name (`vtp runs`)")],
    name: Annotated[str | None, typer.Option("--name", help="The model's name (default: <model>-<dataset>)")] = None,
    alias: Annotated[list[str], typer.Option("--alias", help="Point this alias at the new version; repeat for "
                                                              "several (production, staging, ...)")] = [],  # noqa: B006
    export: Annotated[str | None, typer.Option("--export", help="Ship a checked export with it: its format (onnx) "
                                                                "or path (exports/model.onnx); see `vtp export`")] = None,
    description: Annotated[str, typer.Option(help="What this model is for")] = "",
) -> None:
    """Promote a completed run's best checkpoint (and one of its exports) to a new, immutable version."""
    body = _call("POST", "/api/models", json={"run": run, "name": name, "alias": alias, "export": export,
                                              "description": description})
    typer.echo(describe_version(body))
    for warning in body.get("warnings") or []:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@models_app.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models: name, latest version, aliases."""
    models = _call("GET", "/api/models")["models"]
    if as_json:
        typer.echo(json.dumps(models))
        return
    if not models:
        typer.echo("no registered models yet: `vtp models promote RUN --name NAME --alias production`")
    for m in models:
        aliases = ", ".join(f"{a}=v{n}" for a, n in sorted(m["aliases"].items())) or "no aliases"
        typer.echo(f"{m['name']:<32} latest v{m['latest']}  {aliases}")


@models_app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME (every version) or NAME@v3 / NAME@production")],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A model's versions, or one version with its metrics and export table."""
    name, _, version = ref.partition("@")
    if version:
        body = _call("GET", f"/api/models/{quote(name, safe='')}/versions/{quote(version, safe='')}")
        if as_json:
            typer.echo(json.dumps(body))
            return
        typer.echo(describe_version(body))
        record = body["record"]
        typer.echo(f"  files: {body['uri']}")
        for key, value in sorted((record.get("metrics") or {}).items()):
            typer.echo(f"  {key}: {value:.4f}" if isinstance(value, int | float) else f"  {key}: {value}")
        from tasks.export import describe_row

        for row in record.get("exports") or []:
            typer.echo(f"  export {describe_row(row)}")
        return
    body = _call("GET", f"/api/models/{quote(name, safe='')}")
    if as_json:
        typer.echo(json.dumps(body))
        return
    for v in body["versions"]:
        typer.echo(describe_version(v))


@models_app.command("alias")
def set_alias(name: Annotated[str, typer.Argument(help="The model")],
              alias: Annotated[str, typer.Argument(help="production, staging, or any word")],
              version: Annotated[str, typer.Argument(help="3, v3, latest, or another alias")]) -> None:
    """Point an alias at a version (moving it from the one it named)."""
    body = _call("PUT", f"/api/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}", json={"version": version})
    typer.echo(describe_version(body))
    for warning in body.get("warnings") or []:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@models_app.command("unalias")
def remove_alias(name: Annotated[str, typer.Argument(help="The model")],
                 alias: Annotated[str, typer.Argument(help="The alias to remove")]) -> None:
    """Remove an alias (the version stays)."""
    _call("DELETE", f"/api/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}")
    typer.echo(f"{name}: alias {alias} removed")
