"""The `vtp` command. Thin: each command parses its arguments and calls into core/ and tasks/.

Errors a person can act on (VtpError) are printed as one message and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from core.errors import VtpError
from core.settings import apply_prefect_env, get_settings

app = typer.Typer(help="vtp: train vision models through Prefect, from the terminal.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
datasets_app = typer.Typer(help="Register, import and generate datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
tokens_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
cache_app = typer.Typer(help="The local dataset cache: what it holds, and evicting from it.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
from cli.models import models_app  # noqa: E402
from cli.pools import pools_app  # noqa: E402 - sub-apps defined next to their code
from cli.schedules import schedule_app  # noqa: E402

app.add_typer(schedule_app, name="schedule")
app.add_typer(pools_app, name="pools")
app.add_typer(models_app, name="models")
EPHEMERAL_STARTUP_S = 180  # --local without a server: how long Prefect may take to start its temporary one


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"vtp: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """['epochs=2', 'model=yolo11n', 'overrides.mosaic=0'] -> a spec dict (values parsed as YAML)."""
    spec: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise VtpError(f"{pair!r} is not KEY=VALUE: write e.g. epochs=2 model=yolo11n dataset=shapes-detect")
        value = yaml.safe_load(raw) if raw else ""
        if key.startswith("overrides."):
            spec.setdefault("overrides", {})[key.split(".", 1)[1]] = value
        else:
            spec[key.replace("-", "_")] = value
    aliases = {"imgsz": "image_size", "batch": "batch_size", "lr": "learning_rate", "lr0": "learning_rate", "data": "dataset"}
    return {aliases.get(k, k): v for k, v in spec.items()}


@app.command()
def up(
    storage: Annotated[str | None, typer.Option(
        "--storage", metavar="URL",
        help="The storage root for datasets, checkpoints and reports: file:///path or s3://bucket/prefix "
             "(endpoint from VTP_S3_ENDPOINT_URL, credentials and region from the AWS_* variables); a missing "
             "bucket is created. Default: VTP_STORAGE_URL, else $VTP_HOME/storage")] = None,
) -> None:
    """Start the Prefect server, work pools, deployments and a worker per pool (embedded defaults)."""
    from cli.stack import Stack

    if storage:
        os.environ["VTP_STORAGE_URL"] = storage  # every process the stack starts inherits it
    settings = get_settings()
    settings.prefect_auth(create=True)  # before the environment is set: this process's clients send it too
    apply_prefect_env(settings)
    stack = Stack(settings)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        stack.up(echo=typer.echo)
        code = stack.wait()
    except KeyboardInterrupt:
        typer.echo("\nstopping the web app, the API, the workers and the Prefect server ...")
    except RuntimeError as e:
        code = 1
        typer.secho(f"vtp: {e}", fg=typer.colors.RED, err=True)
    finally:
        stack.stop(echo=typer.echo)
    raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": False})
def train(
    assignments: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE fields of the TrainSpec")] = None,
    spec_file: Annotated[Path | None, typer.Option(
        "--spec", help="A YAML/JSON TrainSpec, or a run's summary.json (its spec, on the same dataset version); "
                       "KEY=VALUE pairs override it")] = None,
    local: Annotated[bool, typer.Option("--local", help="Run the flow in this process (no worker needed)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every log line of the run")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Submit and return without following the run")] = False,
    resume_run: Annotated[str | None, typer.Option(
        "--resume", metavar="RUN",
        help="Go on with RUN: a finished run is continued from its final weights for `epochs` more epochs "
             "(default: as many as it had); an unfinished one (crashed, failed, cancelled) resumes from its "
             "last uploaded checkpoint")] = None,
) -> None:
    """Train a model: `vtp train model=yolo11n dataset=shapes-detect epochs=2 image_size=128`."""
    from core.spec import parse_spec

    try:
        if resume_run:
            _resume(resume_run, parse_assignments(assignments or []), local=local, verbose=verbose, detach=detach)
            return
        data: dict[str, Any] = {}
        if spec_file:
            try:
                data = yaml.safe_load(spec_file.read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                raise VtpError(f"cannot read {spec_file}: {e}") from None
            if not isinstance(data, dict):
                raise VtpError(f"{spec_file} should hold a mapping of TrainSpec fields")
            data = spec_of_summary(data, echo=typer.echo)
        data.update(parse_assignments(assignments or []))
        spec = parse_spec(data)
        settings = get_settings()
        apply_prefect_env(settings)
        if local:
            _train_local(spec, settings)
        else:
            _train_deployment(spec, settings, verbose=verbose, detach=detach)
    except VtpError as e:
        fail(str(e))


def spec_of_summary(data: dict[str, Any], echo: Any = None) -> dict[str, Any]:  # noqa: ANN401 - typer.echo
    """``data`` itself, or, when it is a run's ``summary.json``, the run's spec pinned to the exact
    dataset version it trained on (``dataset.ref``, e.g. ``pets@v1``): `vtp train --spec summary.json`
    trains the same thing on the same files."""
    if not (isinstance(data.get("spec"), dict) and "run_id" in data):
        return data
    spec = dict(data["spec"])
    ref = (data.get("dataset") or {}).get("ref")
    if ref:
        spec["dataset"] = ref
    if echo:
        echo(f"the spec of run {data['run_id']}, on dataset {spec.get('dataset')}")
    return spec


def _resume(run_id: str, changes: dict[str, Any], *, local: bool, verbose: bool, detach: bool) -> None:
    """``vtp train --resume RUN [epochs=N ...]``; see the option's help."""
    from core.spec import RUN_ID_RE, parse_spec
    from tasks import resume
    from tasks.storage import Storage, read_summary

    if not RUN_ID_RE.match(run_id):
        raise VtpError(f"{run_id!r} is not a run id: see `vtp runs`")
    settings = get_settings()
    apply_prefect_env(settings)
    summary = read_summary(settings, run_id)
    if summary is not None:  # finished: a new run starts from its final weights
        data = {**summary["spec"], "extends": run_id, **changes}
        spec = parse_spec(data)
        typer.echo(f"continuing run {run_id} ({summary.get('epochs_completed')} epochs done) for {spec.epochs} "
                   "more epochs, from its final weights")
        if local:
            return _train_local(spec, settings)
        return _train_deployment(spec, settings, verbose=verbose, detach=detach)
    storage = Storage(settings=settings)
    state = resume.latest_state(storage, run_id)
    if state is None:
        raise VtpError(f"run {run_id} has neither finished outputs nor a resumable checkpoint in "
                       f"{settings.storage_url}: start a new run instead")
    spec_data = _run_spec(run_id, settings)
    if changes:
        raise VtpError(f"run {run_id} did not finish: it resumes with its own settings ({', '.join(changes)} "
                       "cannot change mid-run); continue it with new settings once it has finished")
    spec = parse_spec(spec_data)
    typer.echo(f"resuming run {run_id} after epoch {state['epoch']} of {state['epochs']}")
    if local:
        from flows.train import train_flow

        result = train_flow(spec, run_id=run_id, return_state=True)
        if not result.is_completed():
            from cli.submit import failure_message

            fail(f"run failed: {failure_message(result)}")
        return _print_summary(result.result())
    _train_deployment(spec, settings, verbose=verbose, detach=detach, run_id=run_id)


def _run_spec(run_id: str, settings) -> dict[str, Any]:
    """The spec an unfinished run was started with, from its Prefect flow run(s)."""
    from core.prefect_api import prefect_client, server_healthy

    if not server_healthy(settings.prefect_api_url):
        raise VtpError(f"no Prefect server at {settings.prefect_api_url}: start the stack with `vtp up`")
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with prefect_client(settings) as client:
        try:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        except Exception:  # noqa: BLE001 - not a flow-run id (an API run id): look it up by parameter below
            runs = []
        if not runs:
            runs = [fr for fr in client.read_flow_runs(limit=200) if (fr.parameters or {}).get("run_id") == run_id]
    if not runs or not (runs[0].parameters or {}).get("spec"):
        raise VtpError(f"run {run_id} is not known to Prefect at {settings.prefect_api_url}")
    return dict(runs[0].parameters["spec"])


def _train_local(spec, settings) -> None:
    from core.prefect_api import server_healthy

    if not server_healthy(settings.prefect_api_url):
        os.environ.pop("PREFECT_API_URL", None)  # no server running: Prefect runs a temporary one
        # Prefect waits 20 s for it by default: too little on a busy machine (seen: a traceback after 40 s)
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_S))
        typer.echo(f"no Prefect server at {settings.prefect_api_url}: starting a temporary one in this process "
                   f"(waiting up to {os.environ['PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS']} s)")
    from flows.train import train_flow

    try:
        state = train_flow(spec, return_state=True)
    except RuntimeError as e:
        if "ephemeral Prefect API server" not in str(e):
            raise
        fail(f"{e} The machine may be too busy: start the stack with `vtp up` and train without --local, or "
             "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    if not state.is_completed():
        from cli.submit import failure_message

        fail(f"run failed: {failure_message(state)}")
    _print_summary(state.result())


def _train_deployment(spec, settings, *, verbose: bool, detach: bool, run_id: str | None = None) -> None:
    """Submit and follow. With the vtp API up (and a token on this machine) the run goes through
    the API like the web app's, so it is in the ledger from its first second; otherwise it goes
    straight to Prefect and the API adopts it once it is up (api/ledger.py)."""
    from cli.submit import failure_message, follow, submit, submit_via_api
    from core.prefect_api import server_healthy
    from tasks.storage import read_summary

    if not server_healthy(settings.prefect_api_url):
        raise VtpError(f"no Prefect server at {settings.prefect_api_url}: start the stack with `vtp up` "
                       "(in another terminal), or add --local to train in this process")
    from tasks.dataset_store import resolve
    from tasks.storage import Storage

    resolve(Storage(settings=settings), spec.dataset)  # an unknown dataset fails here, before submitting
    submitted = submit_via_api(spec, settings, echo=typer.echo) if run_id is None else None
    if submitted is not None:
        run_id, flow_run_id = submitted["id"], submitted["prefect_flow_run_id"]
        typer.echo(f"submitted run {submitted.get('name') or run_id} ({run_id}) through the vtp API to "
                   f"train/train-{spec.framework} ({spec.task}, {spec.model}, {spec.dataset}, {spec.epochs} epochs)")
    else:
        flow_run_id = submit(spec, run_id=run_id)
        run_id = run_id or str(flow_run_id)
        typer.echo(f"submitted run {run_id} to train/train-{spec.framework} "
                   f"({spec.task}, {spec.model}, {spec.dataset}, {spec.epochs} epochs)")
    ui = settings.prefect_api_url.removesuffix("/api")
    typer.echo(f"Prefect UI: {ui}/runs/flow-run/{flow_run_id}")
    if detach:
        return
    state = follow(flow_run_id, echo=typer.echo, verbose=verbose)
    if not state.is_completed():
        fail(f"run {run_id} {state.name.lower()}: {failure_message(state)}")
    summary = read_summary(settings, str(run_id))
    if summary is None:
        fail(f"run {run_id} completed but its outputs are not complete in {settings.storage_url}")
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo("\nfinal metrics:")
    for k, v in summary["metrics"].items():
        typer.echo(f"  {k:32s} {v:.4f}")
    for note in summary.get("notes") or []:
        typer.echo(f"note: {note}")
    typer.secho(f"checkpoint: {summary['checkpoint_uri']}", fg=typer.colors.GREEN)


@app.command()
def runs(limit: Annotated[int, typer.Option(help="How many recent runs")] = 20,
         as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run")] = False) -> None:
    """Recent training runs with their state and main metric: the API's run list (the web app's,
    every way a run was started) when the API answers, else the Prefect server's flow runs."""
    from cli.submit import api_runs, prefect_runs
    from core.prefect_api import server_healthy

    settings = get_settings()
    apply_prefect_env(settings)
    rows = api_runs(settings, limit)
    if rows is None:
        if not server_healthy(settings.prefect_api_url):
            fail(f"neither the vtp API at {settings.api_url} nor a Prefect server at {settings.prefect_api_url} "
                 "answers: start them with `vtp up`")
        rows = prefect_runs(settings, limit)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo("no runs yet: `vtp train model=yolo11n dataset=shapes-detect epochs=2`")
        return
    from core.metric_names import metric_name

    width = max([len("NAME"), *(len(r.get("name") or "") for r in rows)])
    typer.echo(f"{'RUN':<8}  {'NAME':<{width}}  {'STATE':<10} {'MODEL':<14} {'DATASET':<18} {'STARTED':<25} METRIC")
    for r in rows:
        value = f"{metric_name(r['metric'])} {r['value']:.4f}" if r["value"] is not None else ""
        typer.echo(f"{r['run_id'][:8]}  {r.get('name') or '-':<{width}}  {r['state']:<10} {str(r['model']):<14} "
                   f"{str(r['dataset']):<18} {str(r['started'] or '-'):<25} {value}")


@app.command("compare")
def compare_cmd(
    run_refs: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more run ids (8+ characters) or names")],
    lang: Annotated[str, typer.Option(help="en or ko")] = "en",
) -> None:
    """Runs side by side, and which is better on their shared main metric (through the vtp API)."""
    from cli.submit import api_call

    if len(run_refs) < 2:
        fail("name two runs to compare: `vtp compare RUN RUN` (ids or names from `vtp runs`)")
    try:
        body = api_call(get_settings(), "GET", "/api/compare", params={"runs": run_refs, "lang": lang})
    except VtpError as e:
        fail(str(e))
    typer.echo(body["markdown"])


@app.command("serve")
def serve_cmd(
    ref: Annotated[str, typer.Argument(metavar="MODEL[@VERSION]", help="A registered model, with a version: "
                                       "forklift-detector@production, @v3, @3 (default: latest)")],
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8010,
    fmt: Annotated[str, typer.Option("--format", help="auto (the export the version ships, when it loads here; "
                                                      "else PyTorch), pytorch, or the shipped export's format")] = "auto",
    max_batch_size: Annotated[int, typer.Option(min=1, max=256, help="Most requests predicted together")] = 8,
    batch_timeout_ms: Annotated[float, typer.Option(min=0, max=1000, help="How long a batch waits to fill (ms)")] = 10,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Inference worker processes per device")] = 1,
) -> None:
    """Serve a model version of the registry over HTTP (LitServe: request batching, worker processes).
    POST /predict with {"image": base64, "conf": 0.25, "draw": false} and a vtp API token."""
    from api.serving import serve

    settings = get_settings()
    try:
        serve(ref, settings, host=host, port=port, fmt=fmt.lower(), max_batch_size=max_batch_size,
              batch_timeout=batch_timeout_ms / 1000, workers=workers)
    except VtpError as e:
        fail(str(e))


@app.command("ui")
def ui_cmd(
    host: Annotated[str | None, typer.Option(help="Interface (default VTP_UI_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default VTP_UI_PORT, 7860)")] = None,
) -> None:
    """Serve the web app (chat, runs, datasets, models); it talks to the API."""
    from ui.cli import serve
    from ui.guard import UiRefused

    try:
        serve(host, port)
    except UiRefused as e:
        fail(str(e))


@app.command("export")
def export_cmd(
    run_id: Annotated[str, typer.Argument(help="The run whose best checkpoint to export")],
    fmt: Annotated[list[str], typer.Option("--format", help="onnx | torchscript | openvino | ncnn (ultralytics); "
                                                             "repeat for several")] = ["onnx"],  # noqa: B006
    half: Annotated[bool, typer.Option("--half", help="FP16 weights (ultralytics)")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="INT8, calibrated on the run's dataset (ultralytics: "
                                                       "openvino, onnx)")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="dynamic input shapes (ultralytics)")] = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="check each export against PyTorch on the "
                                                                     "run's validation images")] = True,
) -> None:
    """Export a run's checkpoint, check each export against PyTorch (metric and its drop, largest
    output difference, latency, size) and store both beside it (runs/<id>/exports/, report.json)."""
    from tasks.export import export_command

    formats = [f.strip().lower() for part in fmt for f in part.split(",") if f.strip()]
    raise typer.Exit(export_command(run_id, formats, {"half": half, "int8": int8, "dynamic": dynamic}, check))


@app.command("parse")
def parse_cmd(
    text: Annotated[str | None, typer.Argument(help="A request; without it, one request per line from stdin")] = None,
    full: Annotated[bool, typer.Option("--full", help="Print the whole parse result")] = False,
    conversation: Annotated[bool, typer.Option("--conversation", help="stdin lines are turns of one chat")] = False,
) -> None:
    """Print what vtp understood of a request, as JSON: {"spec", "missing", "question", "notes"}."""
    from chat.cli import parse_command

    raise typer.Exit(parse_command(text, sys.stdin, full=full, conversation=conversation))


@app.command("chat")
def chat_cmd(
    action: Annotated[str | None, typer.Argument(help="'eval' scores the parser on a labelled file; omit to chat")] = None,
    file: Annotated[Path | None, typer.Argument(help="eval: a JSONL file, one {text, expect, expect_missing} per line")] = None,
    llm: Annotated[bool, typer.Option("--llm", help="eval: score the configured LLM endpoint, not the offline parser")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="eval: print the report as JSON")] = False,
) -> None:
    """Chat with vtp in the terminal (Korean or English); runs start once you confirm.

    `vtp chat eval FILE.jsonl [--llm] [--json]` scores the parser on labelled requests instead."""
    if action is None:
        from chat.terminal import chat_loop

        raise typer.Exit(chat_loop(get_settings()))
    if action != "eval" or file is None:
        typer.echo(f"unknown chat action {action!r}: use `vtp chat` to chat or `vtp chat eval FILE.jsonl` to score"
                   if action != "eval" else "vtp chat eval needs a file: `vtp chat eval FILE.jsonl`", err=True)
        raise typer.Exit(2)
    from chat.eval import format_report, load_cases, score

    if llm:
        from chat.llm_settings import LLMSettings

        if not LLMSettings().configured:
            typer.echo("--llm needs an endpoint: set VTP_LLM_BASE_URL and VTP_LLM_MODEL (see `vtp chat` in the README)",
                       err=True)
            raise typer.Exit(2)
    try:
        cases = load_cases(file)
    except (OSError, ValueError) as e:
        typer.echo(f"cannot read {file}: {e}", err=True)
        raise typer.Exit(2) from None
    report = score(cases, use_llm=llm)
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) if as_json else format_report(report))


@datasets_app.command("list")
def datasets_list() -> None:
    """Registered datasets."""
    from tasks.dataset_store import list_datasets
    from tasks.storage import Storage

    found = list_datasets(Storage())
    if not found:
        typer.echo("no datasets yet: `vtp datasets sample shapes-detect` makes one")
    for rec in found.values():
        counts = " ".join(f"{k}={v}" for k, v in rec.counts.items())
        version = f"v{rec.version}" if rec.version else "-"
        typer.echo(f"{rec.name:<20} {version:<5} {str(rec.task):<9} {str(rec.format):<12} {counts:<20} {rec.uri}")


@datasets_app.command("show")
def datasets_show(
    ref: Annotated[str, typer.Argument(help="A dataset name (its latest version) or NAME@v2 / NAME@<hash prefix>")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record, its versions and report as JSON")] = False,
) -> None:
    """A dataset's versions and the health report made when it was imported."""
    from tasks.dataset_store import read_report, resolve
    from tasks.storage import Storage
    from tasks.validation import describe

    storage = Storage()
    try:
        rec = resolve(storage, ref)
        report = read_report(storage, rec)
    except VtpError as e:
        fail(str(e))
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps({**asdict(rec), "report": report}, indent=2, ensure_ascii=False))
        return
    _echo_dataset(rec)
    for v in rec.versions:
        mark = "*" if v.get("version") == rec.version else " "
        counts = " ".join(f"{k}={n}" for k, n in (v.get("counts") or {}).items())
        typer.echo(f" {mark} v{v.get('version')}  {v.get('hash') or '-':<12}  {_when(v.get('created') or 0)}  {counts}")
    typer.echo(describe(report) if report else "  no health report (registered where it is, not imported)")


def _echo_dataset(rec) -> None:
    version = f", version v{rec.version} ({rec.hash})" if rec.version else ""
    typer.echo(f"dataset {rec.name}: {rec.task}, {rec.format}, {len(rec.classes)} classes {rec.classes}, "
               f"{rec.counts}{version} -> {rec.uri}")


@datasets_app.command("sample")
def datasets_sample(
    name: Annotated[str, typer.Argument(help="shapes-detect | shapes-segment | shapes-classify | shapes-pose | shapes-obb")],
    as_name: Annotated[str | None, typer.Option("--as", help="Register under this name")] = None,
    n_train: Annotated[int, typer.Option(help="Training images")] = 24,
    n_val: Annotated[int, typer.Option(help="Validation images")] = 8,
) -> None:
    """Generate a small synthetic dataset and register it (no download needed)."""
    from tasks.dataset_ingest import ingest_sample

    try:
        rec = ingest_sample(name, as_name or name, n_train=n_train, n_val=n_val)
    except VtpError as e:
        fail(str(e))
    typer.echo(f"dataset {rec.name}: {rec.task}, classes {rec.classes}, {rec.counts} -> {rec.uri}")


@datasets_app.command("add")
def datasets_add(
    name: Annotated[str, typer.Argument(help="The name to register")],
    source: Annotated[str, typer.Argument(help="A local folder or archive (imported), or a storage URI (registered)")],
    task: Annotated[str | None, typer.Option(help="detect | segment | classify | pose | obb (guessed when omitted)")] = None,
    val_fraction: Annotated[float | None, typer.Option(
        "--val-fraction", min=0.01, max=0.99,
        help="Share of train moved to a val split made for a dataset that has none (default 0.2)")] = None,
) -> None:
    """Import a local dataset folder/archive into storage (a new version when the name exists and the
    content changed), or register a storage URI. Prints the health report."""
    from tasks.dataset_ingest import ingest

    try:
        rec = ingest(name, source, task=task, val_fraction=val_fraction)
    except VtpError as e:
        fail(str(e))
    from tasks.validation import describe

    _echo_dataset(rec)
    if not getattr(rec, "stored", True):
        typer.echo(f"  same content as v{rec.version}: nothing new was stored")
    elif len(rec.versions) > 1:
        typer.echo(f"  new version v{rec.version}; runs pinned to an earlier one (e.g. dataset={rec.name}@v1) keep it")
    report = getattr(rec, "report", None)
    if report:
        typer.echo(describe(report))


@app.command("worker")
def worker_cmd(
    framework: Annotated[str, typer.Argument(help="The framework whose work pool this worker serves")],
    name: Annotated[str | None, typer.Option(help="The worker's name in Prefect (default vtp-POOL-HOSTNAME)")] = None,
) -> None:
    """Run one framework's worker on this host: a trainer host beside `vtp up` (started there with
    VTP_LOCAL_WORKERS leaving this framework out). It reaches Prefect (VTP_PREFECT_API_URL,
    VTP_PREFECT_AUTH_STRING), the API (VTP_API_URL) and the storage (VTP_STORAGE_URL, VTP_S3_ENDPOINT_URL,
    AWS_*) over the network only; its runs work in its own VTP_HOME."""
    import socket
    import subprocess

    from cli.stack import stack_env, worker_command
    from core.frameworks import frameworks, unavailable

    settings = get_settings()
    if framework not in frameworks():
        missing = unavailable().get(framework)
        fail(f"{framework!r} is not an installed framework here" +
             (f" (missing: {', '.join(missing)}; install its dependency group: uv sync --group {framework})" if missing
              else f"; installed: {', '.join(frameworks())}"))
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        probe = settings.home / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        fail(f"VTP_HOME={settings.home} cannot be this worker's work folder ({e.strerror}): give the worker a "
             "folder of its own that this user can write (never the API's)")
    apply_prefect_env(settings)
    pool = settings.pool_name(framework)
    typer.echo(f"worker for {pool}: Prefect {settings.prefect_api_url}, API {settings.api_url}, "
               f"storage {settings.storage_url}, work folder {settings.home}")
    try:
        code = subprocess.call(worker_command(settings, framework, name or f"vtp-{pool}-{socket.gethostname()}"),
                               env=stack_env(settings))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command("api")
def api_server(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default VTP_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default VTP_API_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default VTP_API_WORKERS)")] = None,
) -> None:
    """Serve the REST API (docs at /docs); the database is migrated first."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from api.db import migrate, unusable
    from api.main import create_app

    settings = get_settings()
    if host is not None or port is not None:
        overrides = {"api_host": host or settings.api_host, "api_port": port or settings.api_port}
        settings = settings.model_copy(update=overrides)
    apply_prefect_env(settings)
    try:
        migrate(settings.database_url)
    except SQLAlchemyError as e:
        fail(unusable(settings.database_url, e))
    workers = workers or settings.api_workers
    typer.echo(f"vtp API: http://{settings.api_host}:{settings.api_port} (docs: /docs)")
    if workers == 1:
        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
        return
    if not settings.redis_url:
        typer.secho(f"note: {workers} API processes without VTP_REDIS_URL: WebSocket subscribers get metrics "
                    "posted to other processes only through their 2 s database poll", fg=typer.colors.YELLOW)
    os.environ.update({"VTP_API_HOST": settings.api_host, "VTP_API_PORT": str(settings.api_port)})
    uvicorn.run("api.main:create_app", factory=True, host=settings.api_host, port=settings.api_port,
                workers=workers, log_level="info")


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _cap_text(max_bytes: int) -> str:
    from tasks.cache import human_bytes

    return human_bytes(max_bytes) if max_bytes else "none"


@cache_app.command("stats")
def cache_stats(as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False) -> None:
    """Cached dataset versions: size on disk, last use, leases; the total against VTP_CACHE_MAX_GB."""
    from tasks.cache import human_bytes, usage

    settings = get_settings()
    try:
        u = usage(settings.cache_root, settings.cache_max_gb)
    except OSError as e:
        fail(f"cannot read the dataset cache {settings.cache_root}: {e}")
    if as_json:
        typer.echo(json.dumps(u.to_dict()))
        return
    leased = sum(1 for v in u.versions if v.leased_by)
    typer.echo(f"dataset cache {u.root}: {_count(len(u.versions), 'version')}, {leased} in use, {human_bytes(u.bytes)} "
               f"on disk (cap {_cap_text(u.max_bytes)}, VTP_CACHE_MAX_GB), {_count(u.blobs, 'blob')}"
               + (f", {len(u.staging)} downloads in progress" if u.staging else ""))
    if not u.versions:
        typer.echo("no dataset versions cached yet: a training run downloads its dataset here")
        return
    typer.echo(f"{'version':<24}  {'dataset':<20} {'files':>7} {'on disk':>10} {'only here':>10}  "
               f"{'last used':<19}  in use by")
    for v in reversed(u.versions):  # most recently used first
        pids = ", ".join(f"pid {p}" for p in v.leased_by) or "-"
        state = "" if v.complete else "  (incomplete)"
        typer.echo(f"{v.key:<24}  {v.dataset[:20]:<20} {v.files:>7} {human_bytes(v.bytes):>10} "
                   f"{human_bytes(v.exclusive_bytes):>10}  {_when(v.last_used):<19}  {pids}{state}")
    if u.over_cap:
        typer.secho("above the cap: `vtp cache prune` evicts the versions no running process uses",
                    fg=typer.colors.YELLOW)


@cache_app.command("prune")
def cache_prune(
    max_gb: Annotated[float | None, typer.Option("--max-gb", min=0,
                                                 help="Evict down to this many GB (default VTP_CACHE_MAX_GB)")] = None,
    evict_all: Annotated[bool, typer.Option("--all", help="Evict every version no running process uses")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Evict least recently used dataset versions until the cache fits its cap (versions in use stay)."""
    from tasks.cache import gb_to_bytes, human_bytes, prune

    settings = get_settings()
    cap = gb_to_bytes(settings.cache_max_gb if max_gb is None else max_gb)
    try:
        report = prune(settings.cache_root, cap, evict_all=evict_all)
    except OSError as e:
        fail(f"cannot prune the dataset cache {settings.cache_root}: {e}")
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    for v in report.evicted:
        typer.echo(f"evicted {v.key}  {v.dataset:<20} {human_bytes(v.exclusive_bytes):>10}  last used {_when(v.last_used)}")
    extra = []
    if report.removed_blobs:
        extra.append(f"{report.removed_blobs} unused blobs")
    if report.removed_leftovers:
        extra.append(f"{report.removed_leftovers} leftover folders")
    typer.echo(f"dataset cache: {human_bytes(report.bytes_before)} -> {human_bytes(report.bytes_after)} on disk "
               f"(cap {_cap_text(cap)}); evicted {_count(len(report.evicted), 'version')}"
               + (f", removed {', '.join(extra)}" if extra else ""))
    if report.kept_leased:
        typer.echo(f"kept {_count(len(report.kept_leased), 'version')} in use by running processes: "
                   + ", ".join(f"{v.key} ({v.dataset})" for v in report.kept_leased))
    if not cap and not evict_all:
        typer.echo("no cap set (VTP_CACHE_MAX_GB=0), so no version was evicted: use --max-gb X or --all")
    elif report.over_cap:
        typer.secho("still above the cap: the rest is in use by running processes", fg=typer.colors.YELLOW)


def _token_session():
    from sqlalchemy.exc import SQLAlchemyError

    from api.db import migrate, session_scope, unusable

    settings = get_settings()
    try:
        migrate(settings.database_url)
    except SQLAlchemyError as e:
        fail(unusable(settings.database_url, e))
    return session_scope(settings)


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="What the token is for, e.g. laptop or ci")]) -> None:
    """Create an API token and print it (this is the only time it is shown)."""
    from api.tokens import create_token

    try:
        with _token_session() as session:
            new = create_token(session, name=name)
    except VtpError as e:
        fail(str(e))
    typer.echo(new.token)
    typer.echo(f"token {new.row.id} {new.row.name!r} created; it is shown only now: keep it somewhere safe", err=True)


@tokens_app.command("list")
def tokens_list() -> None:
    """API tokens: id, prefix, name, created, last used, revoked."""
    from api.tokens import list_tokens

    with _token_session() as session:
        rows = list_tokens(session)
    if not rows:
        typer.echo("no API tokens yet: `vtp tokens create NAME`")
    for t in rows:
        used = t.last_used.isoformat(timespec="seconds") if t.last_used else "never"
        state = "revoked" if t.revoked else "active"
        typer.echo(f"{t.id:<4} {t.prefix}...  {t.name:<20} {state:<8} created {t.created.isoformat(timespec='seconds')}"
                   f"  last used {used}")


@tokens_app.command("revoke")
def tokens_revoke(ref: Annotated[str, typer.Argument(metavar="ID_OR_PREFIX", help="A token id or its prefix")]) -> None:
    """Revoke a token: requests with it get 401 from then on."""
    from api.tokens import revoke_token

    try:
        with _token_session() as session:
            row = revoke_token(session, id_or_prefix=ref)
    except VtpError as e:
        fail(str(e))
    typer.echo(f"revoked token {row.id} {row.name!r} ({row.prefix}...)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
