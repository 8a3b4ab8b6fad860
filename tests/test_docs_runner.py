"""The docs runner itself: it runs what the convention says and fails when a block fails."""

from __future__ import annotations

import textwrap

from tests.docs_blocks import blocks, commands, run_page

FENCE = "```"


def _page(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text).replace("~~~", FENCE), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    return page, work


def test_blocks_of_a_page_share_one_process_and_run_in_order(tmp_path, collector):
    page, work = _page(tmp_path, """
        ~~~python
        import os
        seen = [os.environ["TRACKING_TOOLKIT_LOCAL_COLLECTOR"]]
        ~~~

        ~~~console
        $ echo from-shell > shell.txt
        some output that is not a command
        ~~~

        ~~~python
        assert open("shell.txt").read() == "from-shell\\n"
        open("result.txt", "w").write(seen[0])
        ~~~
        """)
    done = run_page(page, collector.url, work)
    assert done.returncode == 0, done.stderr
    assert (work / "result.txt").read_text() == collector.url


def test_a_failing_python_block_fails_the_page_naming_its_line(tmp_path, collector):
    page, work = _page(tmp_path, """
        Text.

        ~~~python
        x = 1
        raise RuntimeError("broken example")
        ~~~
        """)
    done = run_page(page, collector.url, work)
    assert done.returncode != 0
    assert "broken example" in done.stderr
    assert f'{page}", line 6' in done.stderr


def test_a_failing_command_fails_the_page(tmp_path, collector):
    page, work = _page(tmp_path, """
        ~~~console
        $ python -c "import sys; sys.exit(3)"
        ~~~
        """)
    done = run_page(page, collector.url, work)
    assert done.returncode != 0
    assert "exited 3" in done.stderr


def test_a_no_run_block_is_skipped_and_other_languages_are_not_run(tmp_path, collector):
    page, work = _page(tmp_path, """
        <!-- docs: no-run (runs forever) -->

        ~~~python
        while True: pass
        ~~~

        ~~~bash
        exit 1
        ~~~

        ~~~text
        $ exit 1
        ~~~
        """)
    assert [b.skip for b in blocks(page.read_text())] == ["runs forever"]
    done = run_page(page, collector.url, work)
    assert done.returncode == 0, done.stderr


def test_console_commands_join_continuation_lines():
    block = "$ python -m consumers replay log \\\n    --region eu\nreplayed 3\n$ ls\n"
    assert commands(block) == ["python -m consumers replay log \\\n    --region eu", "ls"]


def test_python_on_the_path_is_the_interpreter_running_the_tests(tmp_path, collector):
    import sys

    page, work = _page(tmp_path, """
        ~~~console
        $ python -c "import sys; print(sys.executable)" > which.txt
        ~~~
        """)
    assert run_page(page, collector.url, work).returncode == 0
    assert (work / "which.txt").read_text().strip() == sys.executable


def test_a_page_sees_none_of_the_runners_names_and_its_functions_pickle(tmp_path, collector):
    page, work = _page(tmp_path, """
        ~~~python
        import multiprocessing

        assert "json" not in globals() and "subprocess" not in globals()

        def square(n):
            return n * n

        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert pool.map(square, range(4)) == [0, 1, 4, 9]
        ~~~
        """)
    done = run_page(page, collector.url, work)
    assert done.returncode == 0, done.stderr
