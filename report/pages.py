"""Write the report's HTML: the pages from Jinja templates, and the shared assets beside them."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import jinja2
import plotly.offline

from report import formatting

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS = "assets"  # folder beside the pages: report.css and plotly.min.js, written once

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    price=formatting.price,
    integer=formatting.integer,
    compact=formatting.compact,
    percent=formatting.percent,
    ratio=formatting.ratio,
    day=formatting.day,
)


def _sign(value: float | None) -> str:
    """CSS class for a number's sign: green gains, red losses."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == 0:
        return ""
    return "up" if value > 0 else "down"


_env.filters["sign"] = _sign


def page_name(symbol: str) -> str:
    """The symbol's page file: letters, digits, '.', '-' and '_' kept, anything else '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", symbol) + ".html"


def write_assets(out_dir: Path) -> None:
    """The stylesheet and plotly.js (from the installed plotly package) into out_dir/assets."""
    assets = out_dir / ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PACKAGE_DIR / "static" / "report.css", assets / "report.css")
    plotly_js = assets / "plotly.min.js"
    source = plotly.offline.get_plotlyjs()
    if not plotly_js.exists() or plotly_js.stat().st_size != len(source.encode()):
        plotly_js.write_text(source, encoding="utf-8")


def write_page(path: Path, template: str, context: dict[str, Any]) -> int:
    """Render template with context (plus the asset folder) to path; return the bytes written."""
    html = _env.get_template(template).render(assets=ASSETS, **context)
    data = html.encode("utf-8")
    path.write_bytes(data)
    return len(data)
