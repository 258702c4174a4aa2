"""The API against its own OpenAPI schema, with schemathesis: every operation, fuzzed with valid
and invalid requests (examples, coverage and fuzzing phases, positive and negative data), on a real
database (SQLite here, PostgreSQL in the integration run) with real local storage and moto's S3.

Checks on every response: no server error, a documented status code, the documented content
type and headers, and a body matching the documented schema (422s included: the API's own
``{detail, errors}``). Requests carry a real API token, and the trainer callbacks a real run token
for the run in their path, so the routes behind authentication are exercised, not just their 401.

Path parameters are sometimes swapped for seeded rows (a finished run with stored outputs, a live
run, a dataset, a project), so the routes get past their 404s: artifacts are listed and served,
callbacks are taken and refused after the run ends, exports and predictions meet a checkpoint.

Prefect is deliberately unreachable (as in every test under tests/api): the routes that submit
to it answer their documented 503. That, and only that, is the 5xx allowed (:func:`no_server_error`).

Deterministic: derandomized Hypothesis, no example database, at most MAX_EXAMPLES generated
cases per operation in the fuzzing phase.
"""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import crud, datasets_service
from api.main import create_app
from api.security import mint_run_token
from core.settings import Settings
from tasks.dataset_ingest import ingest_sample
from tasks.storage import Storage, upload_folder

MAX_EXAMPLES = 25
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "all", "deterministic": True}})
# The schema does not depend on settings: read it once, from an app that never opens its database
OPENAPI = create_app(Settings(home=Path("/nonexistent/vtp-openapi"), database_url="sqlite://", redis_url=None),
                     migrate_on_start=False).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)

# Stand-ins the generator may put in a path parameter; the test swaps in the seeded row's id
SEEDED = {"run_id": ["seeded-run-done", "seeded-run-live"], "dataset_id": ["seeded-dataset"],
          "project_id": ["seeded-project"]}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    options = [path_parameters]
    for key, stand_ins in SEEDED.items():
        if key in path_parameters:
            options += [{**path_parameters, key: s} for s in stand_ins]
    return st.sampled_from(options)


def prefect_down(response, case) -> bool:
    """The documented answer of a route that needs Prefect while Prefect is unreachable."""
    if response.status_code != 503 or "503" not in case.operation.responses.status_codes:
        return False
    try:
        return "Prefect" in response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return False


@schemathesis.check
def no_server_error(ctx, response, case):
    """not_a_server_error, except a documented 503 saying Prefect is unreachable (tests/api run
    without Prefect on purpose; the stack tests submit for real)."""
    if prefect_down(response, case):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def seeded(db, settings, s3_endpoint, tmp_path):
    """Rows for the stand-ins; s3:// URIs go to moto's S3 (a real endpoint, no AWS)."""
    from core.frameworks import timm_model_names
    from trainers.ultralytics.env import import_ultralytics

    # Imported once per process by the first chat turn (timm: torch, torchvision) and the first
    # prediction or export (ultralytics): seconds on a busy machine, past schemathesis' 10 s timeout
    timm_model_names()
    import_ultralytics()
    settings.s3_endpoint_url = s3_endpoint
    storage = Storage(settings=settings)
    ingest_sample("shapes-detect", n_train=3, n_val=2, image_size=64, storage=storage)
    datasets_service.sync_registry(db, settings=settings)
    dataset = crud.get_dataset_by_name(db, name="shapes-detect")
    project = crud.create_project(db, name="seeded")
    spec = {"model": "yolo11n", "dataset": "shapes-detect", "task": "detect", "framework": "ultralytics",
            "epochs": 2, "image_size": 64}
    done = crud.create_run(db, spec=spec, project_id=project.id)
    crud.update_run(db, run=done, state="completed")
    crud.record_metrics(db, run_id=done.id, epoch=1, metrics={"metrics/mAP50(B)": 0.5})
    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint" * 10)  # predict/export must refuse it
    (out / "summary.json").write_text(json.dumps({"spec": spec, "metrics": {"metrics/mAP50(B)": 0.5}}))
    upload_folder(storage, out, "runs", done.id, run_id=done.id)
    live = crud.create_run(db, spec=spec)
    return {"seeded-run-done": done.id, "seeded-run-live": live.id, "seeded-dataset": dataset.id,
            "seeded-project": project.id}


@schema.parametrize()
@hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_schema(case, app, token, seeded, settings):
    for key, value in list((case.path_parameters or {}).items()):
        if isinstance(value, str) and value in seeded:
            case.path_parameters[key] = seeded[value]
    if case.path.startswith("/api/internal/"):  # trainer callbacks: the run's own token
        credential = mint_run_token(str(case.path_parameters["run_id"]), settings)
    else:
        credential = token
    case.call_and_validate(headers={"Authorization": f"Bearer {credential}"}, checks=CHECKS, app=app)
