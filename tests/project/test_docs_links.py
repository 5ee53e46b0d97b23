"""The README and docs/*.md: every relative link and image points at a file of the repository,
and every figure in docs/figures/ is shown somewhere (no stale copies)."""

import pathlib
import re

import pytest

from tests import REPO
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def relative_targets(page):
    """Link targets of a markdown page that are repository paths (no URLs, no in-page anchors)."""
    targets = []
    for target in LINK.findall(page.read_text(encoding='utf-8')):
        if re.match(r'^[a-z]+://', target) or target.startswith(('#', 'mailto:')):
            continue
        targets.append(target.split('#', 1)[0])
    return targets


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.name)
def test_relative_links_exist(page):
    missing = [t for t in relative_targets(page) if t and not (page.parent / t).exists()]
    assert not missing, f'{page.relative_to(REPO)} links to missing files: {missing}'


def test_every_figure_is_shown():
    shown = {(page.parent / t).resolve() for page in PAGES for t in relative_targets(page)}
    unused = [f.name for f in sorted((REPO / 'docs' / 'figures').glob('*.png')) if f.resolve() not in shown]
    assert not unused, f'figures not referenced by any page: {unused}'


def test_link_parser_finds_images_and_skips_urls(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('![a](figures/a.png) [b](other.md#part) [c](https://example.org/x) [d](#here)\n')
    assert relative_targets(page) == ['figures/a.png', 'other.md']
