"""A small synchronous client of the vtp REST API (the UI never touches the database)."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import httpx

ACTIVE = ("queued", "pending", "running")


class ApiError(RuntimeError):
    """A refused or failed request, with the API's own message (``detail``, ``problems``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                           if isinstance(d, dict) else str(d) for d in detail)
    parts = [str(detail or resp.reason_phrase)]
    problems = body.get("problems") if isinstance(body, dict) else None
    for p in (problems or [])[:10]:  # each with its file: "which file" is half of what to fix
        if isinstance(p, dict):
            where = p.get("file") or ""
            parts.append(f"- {where + ': ' if where else ''}{p.get('message', p)}")
        else:
            parts.append(f"- {p}")
    if len(problems or []) > 10:
        parts.append(f"- … {len(problems) - 10} more")
    return "\n".join(parts)


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, *, raw: bool = False, **kw: Any) -> Any:
        """The response's JSON (or bytes when it is not JSON, or always with ``raw``); ApiError otherwise."""
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ApiError(0, f"the vtp API at {self.base_url} did not answer ({e}): is `vtp up` running?") from e
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _message(resp))
        if not raw and resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.content

    # -- chat --------------------------------------------------------------------------------
    def chat(self, message: str, session_id: int | None = None, confirm: bool = False) -> dict[str, Any]:
        return self._call("POST", "/api/chat", json={"session_id": session_id, "message": message, "confirm": confirm})

    def chat_history(self, session_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/chat/{session_id}")

    # -- runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", "/api/runs", params={"limit": limit})["items"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{run_id}")

    def start_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/runs", json={"spec": spec})

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/metrics")["points"]

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/artifacts")["files"]

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        """Save one file of the run's outputs to ``dest`` (kept when it is already there)."""
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = self._call("GET", f"/api/runs/{run_id}/artifacts/{path}", raw=True)  # a .json file is a file too
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(dest)
        return dest

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/cancel")

    def retry(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/retry")

    def logs(self, run_id: str, tail: int = 200) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/logs", params={"tail": tail})["lines"]

    def predict(self, run_id: str, image: Path, conf: float = 0.25) -> dict[str, Any]:
        mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        with open(image, "rb") as f:
            return self._call("POST", f"/api/runs/{run_id}/predict", params={"conf": conf},
                              files={"file": (image.name, f, mime)})

    # -- datasets ----------------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/datasets", params={"limit": 500})["items"]

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/datasets/{dataset_id}")

    def upload_dataset(self, name: str, archive: Path, task: str | None = None) -> dict[str, Any]:
        data = {"name": name, **({"task": task} if task else {})}
        with open(archive, "rb") as f:
            return self._call("POST", "/api/datasets", data=data, files={"file": (archive.name, f)}, timeout=None)

    def register_dataset(self, name: str, uri: str, task: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/api/datasets", json={"name": name, "uri": uri, **({"task": task} if task else {})})

    def make_sample(self, sample: str) -> dict[str, Any]:
        return self._call("POST", "/api/datasets/sample", json={"name": sample}, timeout=300)

    def samples(self, dataset_id: int, n: int = 8) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/datasets/{dataset_id}/samples", params={"n": n}, timeout=300)["items"]
