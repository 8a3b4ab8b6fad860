"""Every code block of the README and the docs pages runs, as the page shows it.

Pages are found by globbing (README.md, docs/**/*.md), so a new page is
covered as soon as it is added; tests/docs_blocks.py holds the convention.
"""

from __future__ import annotations

import pytest

from tests.docs_blocks import ROOT, blocks, pages, run_page

PAGES = pages()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_block_of_the_page_runs(page, collector, tmp_path):
    workdir = tmp_path / "page"
    workdir.mkdir()
    done = run_page(page, collector.url, workdir)
    if done.returncode != 0:
        pytest.fail(
            f"{page.relative_to(ROOT)}: a block failed\n--- stdout\n{done.stdout[-4000:]}"
            f"\n--- stderr\n{done.stderr[-6000:]}", pytrace=False,
        )


def test_the_pages_are_found_and_hold_blocks_that_run():
    names = {str(p.relative_to(ROOT)) for p in PAGES}
    assert "README.md" in names and "docs/index.md" in names
    runnable = [b for p in PAGES for b in blocks(p.read_text(encoding="utf-8")) if b.skip is None]
    assert len([b for b in runnable if b.language == "python"]) >= 30
    assert [b for b in runnable if b.language == "console"]


def test_every_skipped_block_says_why():
    for page in PAGES:
        for block in blocks(page.read_text(encoding="utf-8")):
            assert block.skip is None or block.skip.strip(), f"{page}:{block.line}"
