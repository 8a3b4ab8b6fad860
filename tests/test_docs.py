"""Every code block of the README and the docs pages runs, as the page shows it.

Pages are found by globbing (README.md, docs/**/*.md), so a new page is
covered as soon as it is added; tests/docs_blocks.py holds the convention.
"""

from __future__ import annotations

import re

import pytest

from tests.docs_blocks import ROOT, blocks, needs_redis, pages, run_page

PAGES = pages()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_block_of_the_page_runs(page, collector, tmp_path):
    workdir = tmp_path / "page"
    workdir.mkdir()
    if needs_redis(page):
        from tests.redis_server import MISSING, RedisServer, redis_server_binary

        if redis_server_binary() is None:
            pytest.skip(f"{page.relative_to(ROOT)} needs Redis: {MISSING}")
        pytest.importorskip("redis", reason=f"{page.relative_to(ROOT)} needs the redis extra")
        with RedisServer() as server:
            done = run_page(page, collector.url, workdir, extra_env={"REDIS_URL": server.url})
    else:
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


_LEGEND = re.compile(r"`([A-Z]+)::`[\s|]*(?:is\s+)?`(tests/[\w/]+\.py)`")
_CITED = re.compile(r"`(?:([A-Z]+)::|(tests/[\w/]+\.py)::)(test_\w+)(?:\[[^\]`]*\])?`")


def _cited_tests(text: str) -> list[tuple[str, str]]:
    """(test file, test name) for each test a page names, prefixes resolved by its legend."""
    legend = dict(_LEGEND.findall(text))
    cited = []
    for prefix, path, name in _CITED.findall(text):
        assert path or prefix in legend, f"the prefix {prefix}:: is not in the page's legend"
        cited.append((path or legend[prefix], name))
    return cited


def test_every_test_a_page_names_exists():
    checked = 0
    for page in PAGES:
        for path, name in _cited_tests(page.read_text(encoding="utf-8")):
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^\s*def {name}\(", source, re.M), (
                f"{page.relative_to(ROOT)} names {path}::{name}, which does not exist"
            )
            checked += 1
    assert checked >= 50


def test_the_citation_check_resolves_prefixes_and_catches_a_missing_test():
    text = "| `X::` | `tests/test_docs.py` |\n`X::test_every_test_a_page_names_exists[a]`"
    assert _cited_tests(text) == [("tests/test_docs.py", "test_every_test_a_page_names_exists")]
    with pytest.raises(AssertionError, match="legend"):
        _cited_tests("`Y::test_nothing`")
