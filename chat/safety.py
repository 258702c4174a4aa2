"""What a message may point at. The message is data: nothing in it reaches a shell, a path outside
storage, or a URL the settings do not allow.

A dataset may be a registered name, ``s3://bucket/prefix``, or ``file://`` under the storage root
when storage is local. http(s) and every other scheme, local paths and ``..`` are never a dataset.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlparse

MAX_MESSAGE_CHARS = 2000
URI_RE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9+.-]{0,15})://[^\s\"'<>`|;]*", re.IGNORECASE)
LOCAL_PATH_RE = re.compile(r"(?<![\w:/.])(?:~|\.{1,2})?/(?:[\w.-]+/)*[\w.-]+/?")
S3_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[\w.+=@,-]+)*/?$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def clip(message: str) -> tuple[str, bool]:
    """The message cut to MAX_MESSAGE_CHARS (nobody types more to ask for a training run)."""
    return (message[:MAX_MESSAGE_CHARS], True) if len(message) > MAX_MESSAGE_CHARS else (message, False)


def trim_uri(raw: str) -> str:
    """Strip what a sentence adds after a URI: punctuation and Hangul particles ('s3://a/b에서', '(s3://a/b)')."""
    raw = re.split(r"[가-힣]", raw, maxsplit=1)[0]
    return raw.rstrip(".,;:!?)]}'\"")


def dataset_uri_problem(uri: str, storage_url: str) -> str | None:
    """None when ``uri`` is a dataset location vtp may read, else why not (a key for replies)."""
    try:
        parsed = urlparse(uri)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return "scheme"
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        path = unquote(parsed.path)
        if ".." in path.split("/") or not S3_RE.match(uri.lower()):
            return "bad_s3"
        return None
    if scheme == "file":
        if not storage_url.startswith("file://"):
            return "file_outside_storage"
        if parsed.netloc not in ("", "localhost"):
            return "file_outside_storage"
        root = posixpath.normpath(unquote(urlparse(storage_url).path))
        path = posixpath.normpath(unquote(parsed.path))
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return "file_outside_storage"
        return None
    if scheme in ("http", "https"):
        return "http"
    return "scheme"


def normalise_file_uri(uri: str) -> str:
    parsed = urlparse(uri)
    return "file://" + posixpath.normpath(unquote(parsed.path))


def safe_name(value: str) -> bool:
    return bool(NAME_RE.match(value))


def safe_token(value: str, limit: int = 200) -> bool:
    """A value that is a plain word (model names, optimizer names): no paths, no shell characters."""
    return len(value) <= limit and ".." not in value and re.fullmatch(r"[\w.\-/:]+", value) is not None and \
        not value.startswith("/")
