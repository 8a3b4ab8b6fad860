"""``python -m consumers``: see :mod:`consumers.cli`."""

from __future__ import annotations

from consumers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
