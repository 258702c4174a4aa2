"""Text from user data (class names, dataset and model names, error messages) made inert for the
Markdown and HTML that vtp writes: Prefect artifacts, the web app's cards.

:func:`md_text` escapes HTML (``<img onerror=...>`` shows as text) and every Markdown character that
could start a link, image, emphasis or table cell (``[x](javascript:...)`` shows as text);
:func:`md_code` is for a value shown as inline code, where Markdown is not interpreted but a
backtick or a ``|`` could end the span or the table cell.
"""

from __future__ import annotations

import html
import re
from typing import Any

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|~<>])")
_LINE_BREAKS = re.compile(r"[\r\n\t\x0b\x0c]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def md_text(value: Any) -> str:
    """``value`` as literal text inside Markdown (a paragraph, a list item or a table cell)."""
    text = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(value)))
    # Markdown escapes first (a backslash before each special character), then HTML entities for
    # what a renderer might still read as markup; "&" first so entities are not double-read.
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("\\<", "&lt;").replace("\\>", "&gt;").replace('"', "&quot;")


def md_code(value: Any) -> str:
    """``value`` as inline code: no backtick can close the span, no ``|`` can split a table cell."""
    text = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(value))).replace("`", "'").replace("|", "\\|")
    return f"`{text}`"


def cell(value: Any) -> Any:
    """A table-artifact cell: strings made inert, numbers and None kept."""
    return md_text(value) if isinstance(value, str) else value


def html_text(value: Any) -> str:
    """``value`` as literal text inside HTML."""
    return html.escape(str(value), quote=True)
