"""The model registry: a finished run (and one of its checked exports) promoted to a named model.

``promote`` copies the run's best checkpoint, and the export chosen, from ``runs/<run>/`` to
``models/<name>/<version id>/`` in storage and records a new version: immutable (its files are written
once under a fresh id, its row is never updated), numbered 1, 2, 3 per model, with what it was
promoted from (run, dataset version, spec, final metrics, the run's export table, each file's sha256).
Aliases (``production``, ``staging`` or any word) name one version each and move; ``latest`` is always
the highest version. A version is referred to as ``3``, ``v3``, an alias, or ``latest``.

When MLflow tracking is on (``VTP_TRACKERS`` names mlflow), each version and alias is mirrored to
MLflow's model registry (``MlflowClient.create_model_version``, ``set_registered_model_alias``), linked
to the run's MLflow run when there is one; a mirror that fails is reported, and vtp's registry stays
the source of truth.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import ApiError, Conflict, NotFound
from api.models import ModelAlias, ModelVersion, RegisteredModel, Run, new_id, utcnow
from core.registry_names import ALIAS_RE, MODEL_NAME_RE, RESERVED_ALIASES
from core.settings import Settings

log = logging.getLogger("vtp.registry")
VERSION_REF = re.compile(r"v?(\d{1,6})", re.IGNORECASE)
RECORD = "version.json"  # in the version's folder, written last: the folder is complete when it is there


def check_name(name: str) -> str:
    """A model name as stored: lower case; ApiError saying the rule when it breaks it."""
    name = (name or "").strip().lower()
    if not re.fullmatch(MODEL_NAME_RE, name):
        raise ApiError(f"model name {name[:80]!r} is not usable: use 1-64 lower-case letters, digits, '.', '_' "
                       "or '-', starting with a letter or digit (e.g. forklift-detector)")
    return name


def check_alias(alias: str) -> str:
    alias = (alias or "").strip().lower()
    if not re.fullmatch(ALIAS_RE, alias) or alias in RESERVED_ALIASES or VERSION_REF.fullmatch(alias):
        raise ApiError(f"alias {alias[:40]!r} is not usable: use 1-32 lower-case letters, digits, '_' or '-', "
                       "starting with a letter, not 'latest' and not a version like v3 (e.g. production, staging)")
    return alias


def default_name(run: Run) -> str:
    """The name a promotion without one gets: <model>-<dataset> (``yolo11n-shapes-detect``)."""
    spec = run.spec or {}
    dataset = str(spec.get("dataset") or "data").partition("@")[0].rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", f"{spec.get('model') or 'model'}-{dataset}".lower()))
    return base.strip("-._")[:64] or "model"


def get_model(session: Session, name: str) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == (name or "").strip().lower()))
    if model is None:
        raise NotFound(f"no registered model is named {name[:80]!r}: list them with GET /api/models "
                       "(or `vtp models list`); promote a run to make one")
    return model


def resolve(session: Session, name: str, ref: str | int | None = None) -> ModelVersion:
    """The version of model ``name`` that ``ref`` names: a number (3, "v3"), an alias, or "latest"
    (also when ``ref`` is None). NotFound when there is none."""
    model = get_model(session, name)
    if not model.versions:
        raise NotFound(f"model {model.name} has no versions yet")
    text = str(ref if ref is not None else "latest").strip().lower()
    if text == "latest":
        return model.versions[-1]
    if m := VERSION_REF.fullmatch(text):
        found = next((v for v in model.versions if v.version == int(m.group(1))), None)
        if found is None:
            raise NotFound(f"model {model.name} has no version {m.group(1)}: it has v1 to v{model.versions[-1].version}")
        return found
    alias = next((a for a in model.aliases if a.alias == text), None)
    if alias is None:
        known = ", ".join(a.alias for a in model.aliases) or "none"
        raise NotFound(f"model {model.name} has no alias {text[:40]!r} (its aliases: {known})")
    return alias.version


def _export_row(report: dict[str, Any] | None, export: str) -> dict[str, Any]:
    """The run's export table row that ``export`` names: a path (exports/model.onnx) or a format
    (onnx) that only one checked export of the run has."""
    rows = [r for r in (report or {}).get("rows", []) if r.get("size_mb") is not None]
    exact = [r for r in rows if r["path"] == export]
    matches = exact or [r for r in rows if r["format"] == export.lower()]
    if not matches:
        made = ", ".join(r["path"] for r in rows) or "none yet"
        raise Conflict(f"the run has no {export!r} export to promote (its exports: {made}): export it first "
                       f"(`vtp export RUN --format {export.lower() if '/' not in export else 'onnx'}`)")
    if len(matches) > 1:
        raise Conflict(f"the run has {len(matches)} {export} exports ({', '.join(r['path'] for r in matches)}): "
                       "name the one to promote by its path")
    return matches[0]


def promote(session: Session, settings: Settings, run: Run, name: str | None = None, aliases: list[str] | None = None,
            export: str | None = None, description: str = "") -> tuple[ModelVersion, list[str]]:
    """A new version of model ``name`` (made when new; default :func:`default_name`) from ``run``'s
    best checkpoint and, when ``export`` names one, that checked export (a path or a format), with
    ``aliases`` moved to it. Returns (the version, warnings: e.g. an MLflow mirror that failed).

    Raises Conflict when the run has not completed or its outputs are incomplete, ApiError for a
    name or alias that breaks the rules."""
    from tasks.export import REPORT
    from tasks.storage import MANIFEST, Storage

    name = check_name(name) if name else default_name(run)
    aliases = list(dict.fromkeys(check_alias(a) for a in aliases or []))
    if run.state != "completed":
        raise Conflict(f"run {run.name or run.id} has not completed ({run.state}): only a completed run's "
                       "checkpoint can be promoted")
    storage = Storage(settings=settings)
    manifest = storage.read_json("runs", run.id, MANIFEST)
    summary = storage.read_json("runs", run.id, "summary.json")
    if manifest is None or summary is None or not summary.get("checkpoint_uri"):
        raise Conflict(f"run {run.name or run.id} has no complete outputs in {storage.url} (manifest, summary, "
                       "best checkpoint): it cannot be promoted")
    best = str(summary["checkpoint_uri"]).removeprefix(str(summary.get("run_uri", "")).rstrip("/") + "/")
    report = storage.read_json("runs", run.id, REPORT)
    row = _export_row(report, export) if export else None
    wanted = [best] + ([row["path"]] if row else [])
    files = {rel: entry for rel, entry in manifest["files"].items()
             if any(rel == w or rel.startswith(w + "/") for w in wanted)}
    if best not in files and not any(rel.startswith(best + "/") for rel in files):
        raise Conflict(f"run {run.name or run.id}'s best checkpoint ({best}) is not in its manifest: it cannot be promoted")

    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        model = RegisteredModel(name=name, description=description[:2000])
        session.add(model)
        try:
            session.flush()
        except IntegrityError:  # made by a concurrent promotion
            session.rollback()
            model = get_model(session, name)
    version_id = new_id()
    folder = ("models", name, version_id)
    for rel in sorted(files):  # copied, never moved: the run keeps its files
        dst = storage.path(*folder, rel)
        if "file" in storage.fs.protocol:
            storage.fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
        storage.fs.copy(storage.path("runs", run.id, rel), dst)
    record = {
        "run": {"id": run.id, "name": run.name, "finished": run.finished.isoformat() if run.finished else None},
        "spec": summary.get("spec"), "dataset": summary.get("dataset"), "metrics": summary.get("metrics") or {},
        "main_metric": summary.get("main_metric"), "checkpoint": best, "export": row,
        "exports": (report or {}).get("rows", []), "exports_machine": (report or {}).get("machine"),
        "files": {rel: {"size": e.get("size"), "sha256": e.get("sha256")} for rel, e in sorted(files.items())},
        "description": description[:2000],
    }
    for attempt in range(5):  # the next number; a concurrent promotion of the same model takes it first
        number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
                  or 0) + 1
        record_n = {**record, "name": name, "version": number}
        version = ModelVersion(id=version_id, model_id=model.id, version=number, run_id=run.id,
                               format=row["format"] if row else "pytorch", uri=storage.uri(*folder), record=record_n)
        session.add(version)
        try:
            session.flush()
            break
        except IntegrityError:
            session.rollback()
            if attempt == 4:
                raise
            model = get_model(session, name)
    storage.write_json(version.record, *folder, RECORD)
    for alias in aliases:
        _point(session, model, alias, version)
    session.commit()
    session.refresh(model)
    warnings = mirror(settings, model, version, aliases)
    return version, warnings


def _point(session: Session, model: RegisteredModel, alias: str, version: ModelVersion) -> None:
    found = session.scalar(select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias))
    if found is None:
        session.add(ModelAlias(model_id=model.id, alias=alias, version_id=version.id))
    else:
        found.version_id, found.updated = version.id, utcnow()
    session.flush()


def set_alias(session: Session, settings: Settings, name: str, alias: str, ref: str | int) -> tuple[ModelVersion, list[str]]:
    """Point ``alias`` of model ``name`` at the version ``ref`` names (moving it from where it was)."""
    alias = check_alias(alias)
    version = resolve(session, name, ref)
    model = version.model
    _point(session, model, alias, version)
    session.commit()
    session.refresh(model)
    return version, mirror(settings, model, version, [alias])


def remove_alias(session: Session, settings: Settings, name: str, alias: str) -> None:
    model = get_model(session, name)
    found = next((a for a in model.aliases if a.alias == alias.strip().lower()), None)
    if found is None:
        raise NotFound(f"model {model.name} has no alias {alias[:40]!r}")
    session.delete(found)
    session.commit()
    _mirror_call(settings, lambda c: c.delete_registered_model_alias(model.name, found.alias))


def version_dict(version: ModelVersion) -> dict[str, Any]:
    """A version for the API: {name, version, id, aliases, run_id, format, uri, created, record}."""
    aliases = sorted(a.alias for a in version.model.aliases if a.version_id == version.id)
    latest = version.model.versions[-1].id == version.id if version.model.versions else False
    return {"name": version.model.name, "version": version.version, "id": version.id,
            "aliases": aliases + (["latest"] if latest else []), "run_id": version.run_id, "format": version.format,
            "uri": version.uri, "created": version.created.isoformat(), "record": version.record}


def model_dict(model: RegisteredModel, versions: bool = True) -> dict[str, Any]:
    latest = model.versions[-1] if model.versions else None
    out: dict[str, Any] = {
        "name": model.name, "description": model.description, "created": model.created.isoformat(),
        "latest": latest.version if latest else None,
        "aliases": {a.alias: a.version.version for a in model.aliases},
    }
    if versions:
        out["versions"] = [version_dict(v) for v in reversed(model.versions)]
    return out


def list_models(session: Session) -> list[RegisteredModel]:
    return list(session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)))


# -- MLflow mirror ------------------------------------------------------------------------------------
def _mirror_call(settings: Settings, call: Any) -> str | None:
    """Run ``call(MlflowClient())`` when MLflow tracking is on; the error's words when it fails."""
    if "mlflow" not in [n.strip().lower() for n in (settings.trackers or "").split(",")]:
        return None
    try:
        from mlflow.tracking import MlflowClient

        call(MlflowClient())
    except Exception as e:  # noqa: BLE001 - the mirror is best-effort; vtp's registry is the record
        log.warning("MLflow registry mirror failed: %s", e)
        return f"the MLflow model registry mirror failed ({type(e).__name__}: {str(e)[:200]}); vtp's registry has it"
    return None


def mirror(settings: Settings, model: RegisteredModel, version: ModelVersion, aliases: list[str]) -> list[str]:
    """Mirror ``version`` (made once: its tag ``vtp.version_id`` says whether it is there) and
    ``aliases`` to MLflow's model registry; warnings (at most one) for the caller."""
    def call(client: Any) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(model.name, tags={"vtp": "true"}, description=model.description or None)
        except MlflowException as e:
            if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code) and "already exists" not in str(e):
                raise
        there = client.search_model_versions(f"name='{model.name}' and tag.`vtp.version_id`='{version.id}'")
        if there:
            mlflow_version = there[0].version
        else:
            experiments = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(experiments, filter_string=f"tags.`vtp.run_id` = '{version.run_id}'",
                                      max_results=1) if experiments else []
            made = client.create_model_version(
                model.name, source=version.uri, run_id=runs[0].info.run_id if runs else None,
                tags={"vtp.version_id": version.id, "vtp.version": str(version.version), "vtp.format": version.format,
                      "vtp.run_id": str(version.run_id)},
                description=f"vtp {model.name} v{version.version} from run {version.record['run'].get('name')}")
            mlflow_version = made.version
        for alias in aliases:
            client.set_registered_model_alias(model.name, alias, mlflow_version)

    problem = _mirror_call(settings, call)
    return [problem] if problem else []
