"""`vtp serve MODEL[@alias]`: one model version of the registry served over HTTP, on LitServe.

LitServe (Lightning AI's serving library) is used rather than plain FastAPI for what it does that a
serving endpoint needs and vtp would otherwise write: dynamic request batching (requests arriving
within ``batch_timeout`` seconds are predicted as one batch of at most ``max_batch_size``),
inference in worker processes separate from the HTTP servers, and its health and info routes.

Routes (all need a vtp API token, ``Authorization: Bearer <token>``, checked against the API's own
token table, as the API checks it; revoked tokens are refused):

- ``POST /predict``: JSON ``{"image": <base64 of a JPEG/PNG/... file>, "conf": 0.25, "draw": false}``
  -> ``{"model", "version", "format", "task", "predictions", "batch", "png_base64"?}``. ``predictions``: for
  classification the top-5 ``{class, confidence}`` (softmax probability 0-1); otherwise one
  ``{class, confidence, box}`` per object (confidence 0-1, box ``[x1, y1, x2, y2]`` in pixels of the
  image sent). ``batch``: how many requests were predicted together with this one (1 = alone).
  ``png_base64``: the image with the predictions drawn, when ``draw`` is true.
- ``GET /health`` (200 once the model is loaded), ``GET /info`` (the version served and the batching).

What runs: the version's files are fetched from storage into ``$VTP_HOME/serve/<version id>/`` and
each is checked against the sha256 recorded at promotion. The artifact served is the export the
version ships when the framework's predictor loads it (ultralytics loads all its formats through its
AutoBackend; timm and Hugging Face serve their PyTorch checkpoint), else the PyTorch checkpoint;
``--format pytorch`` forces the checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import litserve as ls
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.errors import VtpError
from core.settings import Settings

log = logging.getLogger("vtp.serve")
MAX_IMAGE_BYTES = 32 * 1024**2  # as the API's predict route
BEARER = HTTPBearer(auto_error=False)
TOKEN_TTL_S = 30.0  # a verified token is trusted this long (a revocation takes effect within it)
_verified: dict[str, float] = {}  # sha256 of a token -> when it was verified (per API server process)
_engines: dict[str, Any] = {}  # database URL -> the engine token checks use (per API server process)
SERVABLE_EXPORTS = {"ultralytics": ("onnx", "torchscript", "openvino", "ncnn")}  # loaded by the framework's predictor


def find_version(settings: Settings, ref: str) -> dict[str, Any]:
    """The version ``ref`` names (``NAME``, ``NAME@3``, ``NAME@v3``, ``NAME@production``), read from
    the registry's database (api.registry.version_dict). VtpError saying what to do when there is none."""
    from api import registry
    from api.db import session_scope
    from api.errors import ApiError

    name, _, version = ref.partition("@")
    try:
        with session_scope(settings) as session:
            return registry.version_dict(registry.resolve(session, name, version or "latest"))
    except ApiError as e:
        raise VtpError(f"{e} (`vtp models list` shows what there is)") from None


def fetch_files(settings: Settings, version: dict[str, Any]) -> Path:
    """The version's files in ``$VTP_HOME/serve/<version id>/``, each checked against its recorded
    sha256 (VtpError when one differs or is missing: the copy in storage is not the version promoted)."""
    from tasks.storage import Storage, sha256_file

    folder = settings.home / "serve" / version["id"]
    record = version["record"]
    if (folder / ".complete").is_file():
        return folder
    part = folder.with_name(folder.name + f".{os.getpid()}.part")
    shutil.rmtree(part, ignore_errors=True)
    storage = Storage(settings=settings)
    base = version["uri"].removeprefix(storage.url + "/")
    for rel, entry in record["files"].items():
        target = part / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            storage.fs.get_file(storage.path(base, rel), str(target))
        except FileNotFoundError:
            raise VtpError(f"{version['name']} v{version['version']} is missing {rel} in {storage.url}: the "
                           "version's files were removed; promote the run again") from None
        if entry.get("sha256") and sha256_file(target) != entry["sha256"]:
            raise VtpError(f"{version['name']} v{version['version']}'s {rel} does not match the sha256 recorded when "
                           "it was promoted: the stored copy changed; it is not served")
    (part / ".complete").write_text(version["id"])
    shutil.rmtree(folder, ignore_errors=True)
    part.rename(folder)
    return folder


def choose_artifact(version: dict[str, Any], folder: Path, fmt: str = "auto") -> tuple[Path, str]:
    """(the file or folder to load, its format): ``auto`` -> the shipped export when the framework's
    predictor loads it, else the PyTorch checkpoint; ``pytorch`` -> the checkpoint; a format -> the
    shipped export of that format (VtpError when the version ships none)."""
    record = version["record"]
    framework = (record.get("spec") or {}).get("framework", "")
    export = record.get("export")
    loadable = export is not None and export["format"] in SERVABLE_EXPORTS.get(framework, ())
    if fmt == "auto":
        fmt = export["format"] if loadable else "pytorch"
    if fmt == "pytorch":
        return folder / record["checkpoint"], "pytorch"
    if export is None or export["format"] != fmt:
        ships = export["format"] if export else "only its PyTorch checkpoint"
        raise VtpError(f"{version['name']} v{version['version']} ships {ships}, not {fmt}: promote the run again "
                       f"with --export {fmt}, or serve with --format pytorch")
    if not loadable:
        raise VtpError(f"the {framework} predictor does not load {fmt} exports here: serve with --format pytorch")
    return folder / export["path"], fmt


def decode_image(payload: Any) -> Any:
    """The PIL image (RGB, or a high-bit-depth mode as sent) in a request's ``image`` (base64);
    HTTPException 413/422 saying what is wrong."""
    from PIL import Image

    from trainers.common.images import HIGH_DEPTH_MODES

    text = payload.get("image") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text:
        raise HTTPException(422, 'send JSON {"image": "<base64 of an image file>", "conf": 0.25, "draw": false}')
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        raise HTTPException(413, f"the image is over {MAX_IMAGE_BYTES // 1024**2} MiB")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "image is not valid base64: send the file's bytes base64-encoded") from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # noqa: BLE001 - any decoding failure means it is not an image
        raise HTTPException(422, f"image is not an image PIL can read ({type(e).__name__}): send a .jpg, .png, "
                                 ".bmp or .webp file") from None
    return image if image.mode in HIGH_DEPTH_MODES else image.convert("RGB")


def _conf(payload: dict[str, Any]) -> float:
    value = payload.get("conf", 0.25)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise HTTPException(422, "conf is the confidence threshold, a number from 0 to 1 (default 0.25)")
    return float(value)


class ModelVersionAPI(ls.LitAPI):
    """The LitAPI serving ``artifact`` (format ``fmt``) of ``version``: requests batched up to
    ``max_batch_size`` within ``batch_timeout`` seconds. Module-level: LitServe's worker processes
    are spawned and receive it pickled."""

    def __init__(self, version: dict[str, Any], artifact: Path, fmt: str, settings: Settings,
                 max_batch_size: int = 8, batch_timeout: float = 0.01) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.version, self.artifact, self.fmt, self.settings = version, artifact, fmt, settings
        self.train_spec = version["record"].get("spec") or {}

    def setup(self, device: str) -> None:
        from core import frameworks
        from core.processes import die_with_parent

        die_with_parent()  # the inference worker ends with the `vtp serve` process, even a killed one

        plugin = frameworks.plugin(self.train_spec["framework"])
        kwargs = {"task": self.train_spec.get("task")} if self.fmt != "pytorch" else {}
        self.predictor = plugin.load_predictor(self.artifact, name=f"{self.version['name']} v{self.version['version']}",
                                               device="cpu" if device == "cpu" else device.replace("cuda:", ""),
                                               **kwargs)

    def authorize(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None) -> None:
        """The bearer token checked against the API's token table (api.tokens.authenticate), once per
        :data:`TOKEN_TTL_S` per token and API server process; 401 saying what to do otherwise."""
        import time

        from api.db import make_engine, session_factory
        from api.security import hash_token
        from api.tokens import TokenRejected, authenticate

        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "this model server needs a vtp API token: send `Authorization: Bearer <token>` "
                                     "(`vtp tokens create NAME` makes one)")
        key, now = hash_token(credentials.credentials), time.monotonic()
        if now - _verified.get(key, -TOKEN_TTL_S) < TOKEN_TTL_S:
            return
        url = self.settings.database_url
        if url not in _engines:
            _engines[url] = make_engine(url)
        try:
            with session_factory(_engines[url])() as session:
                authenticate(session, credentials.credentials)
        except TokenRejected as e:
            raise HTTPException(401, str(e)) from None
        _verified[key] = now

    def decode_request(self, request, **_: Any):  # noqa: ANN001 - unannotated: LitServe then passes the parsed JSON
        payload = request if isinstance(request, dict) else {}
        return decode_image(payload), _conf(payload), bool(payload.get("draw", False))

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs  # predict takes the list of decoded requests

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def predict(self, x: Any, **_: Any) -> Any:
        items = x if isinstance(x, list) else [x]
        lowest = min(conf for _, conf, _ in items)
        # one call for the batch at the lowest threshold asked; each request then keeps its own
        records = self.predictor([image for image, _, _ in items], conf=lowest, draw=any(d for _, _, d in items),
                                 image_size=self.train_spec.get("image_size"))
        out = []
        for (image, conf, want), rec in zip(items, records, strict=True):
            preds, plot = rec["predictions"], rec.get("plot") if want else None
            if rec["task"] != "classify" and conf > lowest:
                preds = [p for p in preds if p["confidence"] >= conf]
                if want:  # drawn again with this request's objects only
                    from trainers.common.predict import draw as draw_boxes

                    plot = draw_boxes(image.convert("RGB"), rec["task"], preds)
            out.append({"task": rec["task"], "predictions": preds, "plot": plot, "batch": len(items)})
        return out if isinstance(x, list) else out[0]

    def encode_response(self, output: dict[str, Any], **_: Any):  # noqa: ANN201 - LitServe reads the annotation
        body = {"model": self.version["name"], "version": self.version["version"], "format": self.fmt,
                "task": output["task"], "predictions": output["predictions"], "batch": output["batch"]}
        if output.get("plot") is not None:
            buf = io.BytesIO()
            output["plot"].convert("RGB").save(buf, format="PNG")
            body["png_base64"] = base64.b64encode(buf.getvalue()).decode()
        return body


def serve(ref: str, settings: Settings, host: str = "127.0.0.1", port: int = 8010, fmt: str = "auto",
          max_batch_size: int = 8, batch_timeout: float = 0.01, workers: int = 1, accelerator: str = "auto") -> None:
    """Serve the version ``ref`` names until interrupted (blocks). VtpError before anything listens when
    the version, its files or the format asked for are not there."""
    version = find_version(settings, ref)
    folder = fetch_files(settings, version)
    artifact, chosen = choose_artifact(version, folder, fmt)
    log.info("serving %s v%s (%s: %s) on %s:%s, batches of up to %s within %.0f ms", version["name"],
             version["version"], chosen, artifact.name, host, port, max_batch_size, batch_timeout * 1000)
    api = ModelVersionAPI(version, artifact, chosen, settings, max_batch_size, batch_timeout)
    metadata = {"model": version["name"], "version": version["version"], "format": chosen,
                "run_id": version["run_id"], "max_batch_size": max_batch_size, "batch_timeout_s": batch_timeout}
    import signal

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt  # LitServe's graceful shutdown stops its worker processes

    signal.signal(signal.SIGTERM, stop)
    server = ls.LitServer(api, accelerator=accelerator, workers_per_device=workers, model_metadata=metadata,
                          timeout=60)
    server.run(host=host, port=port, generate_client_file=False, num_api_servers=1)
