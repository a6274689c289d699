"""QR codes as inline SVG: payment links shown at the desk, otpauth:// URIs for authenticator
apps. One place, because it is the one place that marks generated markup safe."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(data: str, title: str) -> Markup:
    """``data`` as an inline SVG QR code: no styles, no scripts (the CSP allows neither).

    segno draws ``data`` as modules, never as text, so it may hold anything (an email with
    ``<`` in it); ``title`` is written as text and must be a constant."""
    svg = segno.make(data, error="m").svg_inline(scale=4, dark="#111", title=title)
    return Markup(svg)  # noqa: S704  # nosec B704 - see docs/security/bandit.md
