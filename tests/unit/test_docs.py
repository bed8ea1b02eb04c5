"""The documentation: the MkDocs site in docs/ builds with no warning, and README.md is a short front page
whose relative links all resolve.

`mkdocs build --strict` fails on any warning, and mkdocs.yml turns every link problem into one: a link to
a page or file that is not in docs/, a missing anchor, an absolute link. MkDocs is in the lock; without
it these tests fail (they are never skipped).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 250
CONFIGURATION = ROOT / "docs" / "configuration.md"
RUN_SETTINGS_BLOCK = re.compile(r"(<!-- run settings: generated from spark_jobs/common/spec.py -->\n).*?(<!-- end of run settings -->)",
                                re.S)

# [text](target) or [text](target "title"); images too. Code spans and fenced blocks are removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _links(markdown: str) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return LINK.findall(text)


def _anchors(markdown: str) -> set[str]:
    """Heading ids as MkDocs (Python-Markdown's toc) makes them; GitHub makes the same ones for our headings."""
    from markdown.extensions.toc import slugify

    headings = HEADING.findall(FENCE.sub("", markdown))
    return {slugify(CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading), "-") for heading in headings}


def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail into docs/"
    )


def test_readme_relative_links_resolve():
    markdown = README.read_text(encoding="utf-8")
    links = _links(markdown)
    assert links, "no links found in README.md"
    problems = []
    for link in dict.fromkeys(links):
        parts = urlsplit(link)
        if parts.scheme or parts.netloc:  # http(s)://, mailto:
            continue
        if not parts.path:  # #anchor in the README itself
            if parts.fragment and parts.fragment not in _anchors(markdown):
                problems.append(f"{link}: no such heading in README.md")
            continue
        target = (ROOT / unquote(parts.path)).resolve()
        if not target.is_relative_to(ROOT):
            problems.append(f"{link}: points outside the repository")
        elif not target.exists():
            problems.append(f"{link}: {target.relative_to(ROOT)} does not exist")
        elif parts.fragment and target.suffix == ".md":
            if parts.fragment not in _anchors(target.read_text(encoding="utf-8")):
                problems.append(f"{link}: no heading #{parts.fragment} in {target.relative_to(ROOT)}")
    assert not problems, "broken links in README.md:\n" + "\n".join(problems)


def test_link_check_finds_broken_links():
    """The helpers above see links, skip code, and compute the anchors MkDocs makes."""
    sample = (
        "See [a](docs/a.md#x-y) and `[no](code.md)`.\n\n```\n[no](fenced.md)\n```\n"
        "## X y\n### Airflow (`make ui`)\n"
    )
    assert _links(sample) == ["docs/a.md#x-y"]
    assert _anchors(sample) == {"x-y", "airflow-make-ui"}


def run_settings_table() -> str:
    """The configuration page's table of the run spec's settings (variable, default, bounds, form field, help)."""
    from spark_jobs.common import spec

    rows = ["| variable | default | values | form field | meaning |", "| --- | --- | --- | --- | --- |"]
    for setting in spec.SETTINGS:
        default = str(setting.default).lower() if setting.type is bool else setting.default
        values = ("`true`, `false`" if setting.type is bool else
                  ", ".join(f"`{c}`" for c in setting.choices) if setting.choices else
                  f"{setting.type.__name__}, {setting.bounds_text()}")
        rows.append(f"| `{setting.env}` | `{default}` | {values} | {f'`{setting.name}`' if setting.title else ''} | "
                    f"{setting.help} |")
    return "\n".join(rows) + "\n"


def test_the_configuration_page_lists_every_run_setting_as_the_spec_defines_it():
    page = CONFIGURATION.read_text(encoding="utf-8")
    block = RUN_SETTINGS_BLOCK.search(page)
    assert block, "docs/configuration.md lost its generated run settings block"
    assert block.group(0) == block.group(1) + run_settings_table() + block.group(2), (
        "docs/configuration.md's run settings differ from spark_jobs/common/spec.py: run "
        "`python -m tests.unit.test_docs` to rewrite them")


if __name__ == "__main__":  # rewrite the generated block of docs/configuration.md
    page = CONFIGURATION.read_text(encoding="utf-8")
    CONFIGURATION.write_text(RUN_SETTINGS_BLOCK.sub(lambda m: m.group(1) + run_settings_table() + m.group(2), page),
                             encoding="utf-8")
