"""The report's HTML pieces: escaping, inline figures and faces, number formats, the stylesheet.

Everything is inline (``data:`` URIs, one ``<style>``), so a report opens offline.
"""

from __future__ import annotations

import base64
import re

from ...names import html_text, short_hash
from .gallery import Picture, finite


def esc(text) -> str:
    """``text`` escaped for HTML text and attribute values, control characters shown as
    escapes (:func:`mfrkit.names.html_text`)."""
    return html_text(text)


def slug(text: str) -> str:
    """An HTML id for ``text``; a hash of ``text`` is added when characters were replaced,
    so two protocols whose names differ only there (``a b``, ``a.b``) keep apart anchors."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"
    return s if s == text else f"{s}-{short_hash(text)}"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(svg: bytes, alt: str, cls: str = "fig") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="{data_uri(svg, "image/svg+xml")}">'


def picture(p: Picture, alt: str) -> str:
    if p.data is None:
        return f'<div class="noimg" title="{esc(p.note)}">{esc(p.note or "no image")}</div>'
    return f'<img class="face" alt="{esc(alt)}" src="{data_uri(p.data, p.mime)}">'


def count(v) -> str:
    return "?" if v is None else f"{int(v):,}"


def fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or not finite(v) else f"{float(v):.{digits}f}"


def interval(lo, hi, digits: int = 4) -> str:
    return "" if lo is None or hi is None or not finite(lo) or not finite(hi) else f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;color:#222;background:#fff}
h1{margin:24px 0 8px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}h3{margin-top:28px}h4{margin:18px 0 6px}h5{margin:10px 0 6px;color:#555}
nav{position:sticky;top:0;background:#fafafa;border-bottom:1px solid #ddd;padding:8px 0;font-size:14px;z-index:2}
nav a{color:#1f5fa8;text-decoration:none}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.best{background:#e8f5e9;font-weight:600}td.na{color:#999;text-align:center}
.ci{color:#666;font-weight:normal;font-size:12px}.star{color:#2e7d32}.flag{color:#b26a00}
.note{color:#555;font-size:13px;max-width:1100px}.note.missing{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;color:#5d4300}.rules{font-size:13px;color:#444}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
img.fig{max-width:100%;height:auto;border:1px solid #eee}img.wide{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fcfcfc;font-size:11px;max-width:260px}
figure.pair img,figure.pair .noimg{width:112px;height:112px;object-fit:contain;margin-right:4px}
figure.single img,figure.single .noimg{width:112px;height:112px;object-fit:contain}
.noimg{display:inline-flex;align-items:center;justify-content:center;background:#eee;color:#777;font-size:10px;text-align:center;overflow:hidden;vertical-align:top}
figcaption{margin-top:4px;line-height:1.35;word-break:break-all}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-weight:600;font-size:10px}
.badge.bad{background:#fdecea;color:#b71c1c}.badge.ok{background:#e8f5e9;color:#1b5e20}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
footer{margin-top:48px;color:#777;font-size:12px}code{font-size:12px}
"""
