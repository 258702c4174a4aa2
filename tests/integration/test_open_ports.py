"""Issue 13, finding 3: the Prefect server `vtp up` starts. Anyone who reached :4200 could create a
flow run of a vtp deployment with ``job_variables.command`` (or a deployment with a shell pull
step) and run a program on the worker, and any web page could do it through the browser and read
flow-run parameters. Now the server requires the auth string `vtp up` generates, answers CORS only
for its own UI, and the process pools take no ``command``/``working_dir`` from job variables.

Against the session's real stack; the proof of execution is a file that must not appear."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from core.settings import prefect_origins


@pytest.fixture(scope="module")
def prefect(stack):
    url = stack["PREFECT_API_URL"]
    authed = {"Authorization": "Basic " + base64.b64encode(stack["PREFECT_AUTH"].encode()).decode()}
    with httpx.Client(timeout=30) as c:
        r = c.get(f"{url}/deployments/name/train/train-ultralytics", headers=authed)
        assert r.status_code == 200, r.text
        yield url, authed, r.json()["id"]


def _flow_runs_named(url: str, authed: dict, name: str) -> list[dict]:
    r = httpx.post(f"{url}/flow_runs/filter", headers=authed, timeout=30,
                   json={"flow_runs": {"name": {"any_": [name]}}})
    assert r.status_code == 200, r.text
    return r.json()


def test_anonymous_callers_get_nothing_from_prefect(prefect, tmp_path):
    url, authed, deployment_id = prefect
    proof = tmp_path / "ran-anonymously"
    attacks = [
        # a flow run of vtp's deployment with a command of the attacker's, JSON without a content
        # type (what a cross-site form or fetch can send)
        ("POST", f"/deployments/{deployment_id}/create_flow_run",
         {"name": "anon-cmd", "job_variables": {"command": f"touch {proof}"},
          "parameters": {"spec": {"model": "yolo11n", "dataset": "shapes-detect"}}}, {}),
        ("POST", f"/deployments/{deployment_id}/create_flow_run",
         {"name": "anon-cmd-json", "job_variables": {"command": f"touch {proof}"}},
         {"Content-Type": "application/json"}),
        # a new deployment whose pull step runs a shell script
        ("POST", "/deployments/", {"name": "evil", "flow_id": "00000000-0000-0000-0000-000000000000",
                                   "pull_steps": [{"prefect.deployments.steps.run_shell_script":
                                                   {"script": f"touch {proof}"}}]}, {}),
        # harvesting run tokens / tickets from flow-run parameters
        ("POST", "/flow_runs/filter", {"limit": 50}, {}),
        ("GET", f"/deployments/{deployment_id}", None, {}),
        ("GET", "/work_pools/", None, {}),
    ]
    wrong = {"Authorization": "Basic " + base64.b64encode(b"guess").decode()}
    for method, path, body, headers in attacks:
        for creds in ({}, wrong, {"Authorization": "Bearer x"}):
            r = httpx.request(method, f"{url}{path}", headers={**headers, **creds}, timeout=30,
                              content=json.dumps(body) if body is not None else None)
            assert r.status_code == 401, (method, path, creds, r.status_code, r.text[:200])
    # health probes stay open (k8s, `vtp up`'s own wait)
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    time.sleep(5)  # a worker polls every 0.5 s: long enough for a created run to have started
    assert not proof.exists()
    assert _flow_runs_named(url, authed, "anon-cmd") == [] and _flow_runs_named(url, authed, "anon-cmd-json") == []


def test_prefect_answers_cors_only_for_its_own_ui(prefect):
    url, _, _ = prefect
    own = prefect_origins(url)
    for origin in ("http://attacker.example", "null", "http://127.0.0.1:1"):
        r = httpx.options(f"{url}/flow_runs/filter", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        allowed = r.headers.get("access-control-allow-origin")
        assert allowed not in ("*", origin), (origin, allowed)
        r = httpx.get(f"{url}/health", headers={"Origin": origin}, timeout=10)
        assert r.headers.get("access-control-allow-origin") not in ("*", origin)
    r = httpx.options(f"{url}/flow_runs/filter", timeout=10, headers={
        "Origin": own[0], "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.headers.get("access-control-allow-origin") == own[0]


def test_job_variables_cannot_choose_the_workers_command(prefect, tmp_path):
    """Even a caller with the auth string (an operator's script gone wrong, a leaked string) cannot
    make the process worker run another program or start in another folder: the run executes with
    vtp's launcher and fails on its bad spec, and the proof file never appears."""
    url, authed, deployment_id = prefect
    proof = tmp_path / "ran-by-job-variables"
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "launch.py").write_text(f"open({str(proof)!r}, 'w').write('x')\n")
    r = httpx.post(f"{url}/deployments/{deployment_id}/create_flow_run", headers=authed, timeout=30, json={
        "name": "jobvars-cmd",
        "job_variables": {"command": f"touch {proof}", "working_dir": str(tmp_path)},
        "parameters": {"spec": {"model": "yolo11n", "dataset": "no-such-dataset-for-this-test", "epochs": 1}}})
    assert r.status_code == 201, r.text
    flow_run_id = r.json()["id"]
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/flow_runs/{flow_run_id}", headers=authed, timeout=30).json()["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(1)
    assert state == "FAILED", f"the worker should have run the flow (with vtp's launcher) and failed on the spec; state {state}"
    assert not proof.exists()
    pool = httpx.get(f"{url}/work_pools/ultralytics-process", headers=authed, timeout=30).json()
    variables = pool["base_job_template"]["variables"]["properties"]
    assert "command" not in variables and "working_dir" not in variables
