"""Every scenario file, every protocol: the same tables as the committed
golden digests (``tests/golden/digests.py`` says how to regenerate them, only
on purpose)."""

from __future__ import annotations

import json

from golden.digests import FILE, compute


def test_every_run_matches_its_golden_digest() -> None:
    expected = json.loads(FILE.read_text())
    actual = compute()
    assert actual.keys() == expected.keys(), "scenario files or protocols changed: regenerate on purpose"
    moved = {run: [t for t in tables if tables[t] != expected[run][t]] for run, tables in actual.items()}
    moved = {run: tables for run, tables in moved.items() if tables}
    assert not moved, f"results moved (regenerate the digests only on purpose): {moved}"
