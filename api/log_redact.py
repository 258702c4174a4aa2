"""No secret in the API's logs: uvicorn's access log (and its WebSocket lines) write the full URL,
and browsers can only authenticate a WebSocket with ``?token=`` (README). A filter on uvicorn's
and vtp's loggers replaces every secret-looking query value (``token=``, ``ticket=``, ...), bearer
credential and vtp API token with ``[redacted]`` before any handler writes it. The log folder
``$VTP_HOME/logs`` is made private (0700, files 0600) at start-up.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:token|access_token|api_token|run_token|ticket|api_key|apikey|key|secret|password|signature)=)"
    r"[^&;\s\"'#]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_VTP_TOKEN = re.compile(r"\b(vtp_)[A-Za-z0-9_-]{16,}")
_TICKET = re.compile(r"\b(vtpclaim\.)[A-Za-z0-9._-]+")
LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "vtp", "vtp.api")


def redact(text: str) -> str:
    text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    text = _BEARER.sub(r"\1" + REDACTED, text)
    text = _VTP_TOKEN.sub(r"\1" + REDACTED, text)
    return _TICKET.sub(r"\1" + REDACTED, text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Rewrites the record's message and string arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return True


def install(log_dir: Path | None = None) -> None:
    """Add the filter to uvicorn's and vtp's loggers (once), and make ``log_dir`` private."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
    if log_dir is not None:
        private_dir(log_dir)


def private_dir(path: Path) -> None:
    """0700 for a folder vtp owns (and 0600 for the files in it); another user's folder is left alone."""
    try:
        if not path.is_dir() or path.stat().st_uid != os.getuid():
            return
        os.chmod(path, stat.S_IRWXU)
        for child in path.iterdir():
            if child.is_file() and not child.is_symlink() and child.stat().st_uid == os.getuid():
                os.chmod(child, stat.S_IRUSR | stat.S_IWUSR)
    except OSError as e:
        logging.getLogger("vtp.api").warning("could not make %s private: %s", path, e)
