"""Great-expectations Data Docs that open without internet access.

GX's pages load jQuery, Bootstrap, bootstrap-table, Font Awesome and Vega from public CDNs, so on an air-gapped
cluster (and in CI) they render unstyled with script errors. Where the same files are installed locally (setup puts
them under ``.cache/docs-assets`` with npm; ``TAOSR1_DOCS_ASSETS`` names another folder) they are copied into the
site's ``static/vendor`` and every page points at them; without them the pages keep the CDN links.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from taosr1.obs import get_logger, log_event

log = get_logger(__name__)

# npm packages `scripts/setup.sh` installs (the versions GX's templates ask for)
NPM_PACKAGES = ("jquery@3.7.1", "bootstrap@4.3.1", "popper.js@1.12.9", "bootstrap-table@1.19.1",
                "bootstrap-datepicker@1.9.0", "@fortawesome/fontawesome-free@6.6.0", "vega@5", "vega-lite@5",
                "vega-embed@6", "@forevolve/bootstrap-dark@1.1.0")

# CDN address (up to its query string) → the file inside node_modules
CDN_FILES = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}
EXTRA_FOLDERS = ("@fortawesome/fontawesome-free/webfonts",)  # all.min.css loads ../webfonts/*
LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"
_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>")
_URL = re.compile(r'(?P<attr>src|href)="(?P<url>https://[^"?]+)(?:\?[^"]*)?"')
# a local copy is not the CDN's byte-identical file, and file:// pages cannot make CORS requests
_SRI = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')


def assets_dir() -> Path | None:
    """The installed node_modules with GX's CDN files (``$TAOSR1_DOCS_ASSETS`` or the checkout's
    ``.cache/docs-assets/node_modules``), or None."""
    env = os.environ.get("TAOSR1_DOCS_ASSETS")
    cand = Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "docs-assets" / "node_modules"
    return cand if cand.is_dir() and (cand / CDN_FILES["https://code.jquery.com/jquery-3.7.1.min.js"]).exists() \
        else None


def localize(site: Path, assets: Path | None = None) -> int:
    """Point every page of a Data Docs site at local copies of its CDN files; returns the links rewritten (0 when
    the assets are not installed: the pages keep their CDN links)."""
    assets = assets or assets_dir()
    if assets is None or not site.is_dir():
        return 0
    vendor = site / "static" / "vendor"
    for rel in (*CDN_FILES.values(), *EXTRA_FOLDERS):
        src, dst = assets / rel, vendor / rel
        if dst.exists() or not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    rewritten = 0
    for page in site.rglob("*.html"):
        up = "../" * (len(page.relative_to(site).parts) - 1)

        def local(m: re.Match) -> str:
            nonlocal rewritten
            url = m.group("url")
            if url == LOGO:
                rewritten += 1
                return f'{m.group("attr")}="{up}static/images/logo-long.png"'
            if url in CDN_FILES and (vendor / CDN_FILES[url]).exists():
                rewritten += 1
                return f'{m.group("attr")}="{up}static/vendor/{CDN_FILES[url]}"'
            return m.group(0)

        def tag(m: re.Match) -> str:
            new_tag = _URL.sub(local, m.group(0))
            return _SRI.sub("", new_tag) if new_tag != m.group(0) else new_tag

        text = page.read_text(encoding="utf-8")
        new = _TAG.sub(tag, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    log_event(log, "quality.docs_offline", site=str(site), links=rewritten)
    return rewritten
