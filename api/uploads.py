"""Receiving a multipart upload straight to disk, with a hard size cap.

Starlette's form parser spools every file completely before a route sees it, so a size check there
comes after the disk has been filled. Here the request stream is parsed as it arrives
(python-multipart, as Starlette does) and reading stops as soon as the cap is passed: at most
``max_bytes`` plus one chunk ever reach the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from api.errors import PayloadTooLarge, Unprocessable

FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and the small text fields
MAX_FIELD_BYTES = 4096
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the file part, written under dest_dir with its archive suffix
    filename: str | None = None
    size: int = 0


def archive_suffix(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise Unprocessable(f"{filename!r} is not a dataset archive: upload a .zip or .tar.gz of the dataset folder")


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes (VTP_MAX_UPLOAD_BYTES): "
                           "split the dataset, or put it in storage and register its URI instead")


class _Receiver:
    """python-multipart callbacks: text fields into memory (bounded), the one file part to disk."""

    def __init__(self, dest_dir: Path, file_field: str, max_bytes: int):
        self.dest_dir, self.file_field, self.max_bytes = dest_dir, file_field, max_bytes
        self.upload = Upload()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._data = bytearray()
        self._out = None

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._data = b"", "", bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self._name != self.file_field or self._out is not None:
            raise Unprocessable(f"send exactly one file, in the form field {self.file_field!r}")
        filename = Path(options[b"filename"].decode("utf-8", "replace").replace("\\", "/")).name
        self.upload.filename = filename
        self.upload.path = self.dest_dir / f"upload{archive_suffix(filename)}"
        self._out = open(self.upload.path, "wb")  # noqa: SIM115 - closed in on_part_end / close()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None and not self._out.closed:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise too_large(self.max_bytes)
            self._out.write(data[start:end])
        else:
            if len(self._data) + end - start > MAX_FIELD_BYTES:
                raise Unprocessable(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")
            self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._out is not None and not self._out.closed:
            self._out.close()
        elif self._name:
            self.upload.fields[self._name] = self._data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive(request: Request, *, dest_dir: Path, max_bytes: int, file_field: str = "file") -> Upload:
    """Parse a multipart/form-data request into ``dest_dir``; 413 once ``max_bytes`` is passed."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise Unprocessable("the upload is not multipart/form-data with a boundary: send the file as a form field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise too_large(max_bytes)
    receiver = _Receiver(dest_dir, file_field, max_bytes)
    callbacks = {name: getattr(receiver, name) for name in (
        "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as e:
        raise Unprocessable(f"the upload is not valid multipart/form-data ({e}); send it again") from None
    finally:
        receiver.close()
    return receiver.upload
