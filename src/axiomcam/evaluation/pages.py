"""What axiomcam's self-contained HTML pages share (the evaluation's ``report.html``, the
diagnosis of ``axiomcam diagnose``): escaping, inline pictures, the style and the page.

Self-contained means readable offline in any browser: every picture is an inline base64
``data:`` URI, the style sheet is inline, there is no script and no reference to any URL.
Text from data is escaped with :func:`html_text`, which also spells ``://`` as
``:&#47;&#47;`` so that no URL scheme appears in a page (a browser shows it unchanged).

Examples:
    >>> page = html_page("a <run>", "<p>hello</p>", version="1.0")
    >>> "<h1>a &lt;run&gt;</h1>" in page, "http" in page, page.rstrip().endswith("</html>")
    (True, False, True)
"""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

__all__ = ["JPEG_QUALITY", "PAGE_STYLE", "THUMBNAIL_SIZE", "data_uri", "html_page",
           "html_text", "inline_jpeg"]

#: the longest side of an inlined picture (the report's gallery), in pixels
THUMBNAIL_SIZE = 224

#: JPEG quality of the inlined pictures (the plots stay PNG)
JPEG_QUALITY = 85

#: the style sheet of every page
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 75em;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
.best { font-weight: bold; background: #e8f5e9; }
.note { color: #555; font-size: 0.9em; }
.plots figure, .row figure { display: inline-block; margin: 0.4em; vertical-align: top; }
.plots img { max-width: 100%; border: 1px solid #eee; }
.row figure { width: 232px; }
.row img { border: 1px solid #ccc; }
figcaption { font-size: 0.85em; word-wrap: break-word; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def html_text(value: object) -> str:
    """``str(value)`` escaped for HTML text and attribute values, with ``://`` spelled so
    that no URL scheme appears in the page (a browser shows the same characters).

    Examples:
        >>> html_text('<b class="x"> http://host')
        '&lt;b class=&quot;x&quot;&gt; http:&#47;&#47;host'
    """
    return html.escape(str(value), quote=True).replace("://", ":&#47;&#47;")


def data_uri(data: bytes, mime: str) -> str:
    """``data`` as an inline ``data:MIME;base64,...`` URI.

    Examples:
        >>> data_uri(b"hi", "text/plain")
        'data:text/plain;base64,aGk='
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def inline_jpeg(picture: Image.Image, size: int = THUMBNAIL_SIZE) -> str:
    """A picture as an inline JPEG URI (:data:`JPEG_QUALITY`), shrunk to ``size`` pixels
    on its longest side if larger.

    Examples:
        >>> inline_jpeg(Image.new("RGB", (300, 30))).startswith("data:image/jpeg;base64,")
        True
    """
    image = picture.convert("RGB")
    if max(image.size) > size:
        image = image.copy()
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return data_uri(buffer.getvalue(), "image/jpeg")


def html_page(title: str, body: str, *, version: object = None, style: str = "") -> str:
    """A whole page: ``title`` (escaped here) as its title and first heading, then
    ``body`` (HTML, used as it is), then a footer naming axiomcam's ``version``; the style
    sheet is :data:`PAGE_STYLE` followed by ``style``.

    Examples:
        >>> page = html_page("x", "<p>y</p>", style="p { color: red; }")
        >>> "<p>y</p>" in page, "p { color: red; }" in page, "written by axiomcam" in page
        (True, True, True)
    """
    footer = "written by axiomcam" + (f" {html_text(version)}" if version else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html_text(title)}</title>\n<style>{PAGE_STYLE}{style}</style>\n</head>\n"
        f"<body>\n<h1>{html_text(title)}</h1>\n{body}"
        f'<p class="note">{footer}</p>\n</body>\n</html>\n'
    )
