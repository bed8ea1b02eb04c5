"""Fetch the scripts, stylesheets and fonts that GX Data Docs pages load from CDNs, from npm, into
``plugins/movielens/validation/datadocs_assets/`` (with each package's licence and a manifest of sha256s),
so the pages work with no internet (:func:`movielens.validation.datadocs.bundle_assets`).

Run it again only to change a version (the files are committed; nothing fetches them at run time)::

    .venv/bin/python tools/vendor_datadocs_assets.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "plugins" / "movielens" / "validation" / "datadocs_assets"

#: package@version -> {path in the package: the CDN URLs GX 1.x's templates write for it (none: a file the
#: package's stylesheet loads)}. Versions are the ones in GX's templates.
PACKAGES: dict[str, dict[str, list[str]]] = {
    "jquery@3.7.1": {"dist/jquery.min.js": ["https://code.jquery.com/jquery-3.7.1.min.js"]},
    "popper.js@1.12.9": {"dist/umd/popper.min.js": ["https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js"]},
    "bootstrap@4.3.1": {
        "dist/js/bootstrap.min.js": ["https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"],
        "dist/css/bootstrap.min.css": ["https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"],
    },
    "bootstrap-table@1.19.1": {
        "dist/bootstrap-table.min.js": ["https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js"],
        "dist/bootstrap-table.min.css": ["https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css"],
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js": [
            "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
        ],
        # GX's templates load the filter-control stylesheet of 1.19.0 (the same rules as 1.19.1's).
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css": [
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        ],
    },
    "bootstrap-datepicker@1.9.0": {
        "dist/js/bootstrap-datepicker.min.js": ["https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js"],
        "dist/css/bootstrap-datepicker.min.css": ["https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css"],
    },
    "@forevolve/bootstrap-dark@1.1.0": {
        "dist/css/bootstrap-prefers-dark.min.css": ["https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"],
    },
    "@fortawesome/fontawesome-free@6.6.0": {
        "css/all.min.css": ["https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css"],
        # all.min.css names each font as woff2 first (every browser of today takes it) and ttf second.
        "webfonts/fa-solid-900.woff2": [],
        "webfonts/fa-regular-400.woff2": [],
        "webfonts/fa-brands-400.woff2": [],
        "webfonts/fa-v4compatibility.woff2": [],
    },
}
LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md")


def _tarball(spec: str, work: Path) -> tarfile.TarFile:
    done = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(work)],
                          capture_output=True, text=True, check=True)
    return tarfile.open(work / done.stdout.strip().splitlines()[-1])


def main() -> int:
    manifest = {"files": []}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in PACKAGES.items():
            name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
            with _tarball(spec, Path(tmp)) as tar:
                members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
                licence = next((n for n in LICENCE_NAMES if n in members), None)
                if licence is None:  # (popper.js 1.12.9 ships none: its package.json and file header say MIT)
                    meta = json.load(tar.extractfile(members["package.json"]))
                    (ASSETS / name).mkdir(parents=True, exist_ok=True)
                    (ASSETS / name / "LICENSE").write_text(
                        f"{spec}: license {meta['license']} (package.json), copyright {meta.get('author', 'its authors')};"
                        " see the header of each file.\n")
                for rel in [*files, *([licence] if licence else [])]:
                    data = tar.extractfile(members[rel]).read()
                    # Fonts keep their folder name: the stylesheet loads them as ../webfonts/<file>.
                    target = ASSETS / name / (rel.split("/", 1)[-1] if rel.startswith("dist/") else rel)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    if rel != licence:
                        manifest["files"].append({
                            "file": target.relative_to(ASSETS).as_posix(), "package": spec, "source": rel,
                            "sha256": hashlib.sha256(data).hexdigest(), "urls": files[rel],
                        })
    (ASSETS / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest['files'])} files in {ASSETS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
