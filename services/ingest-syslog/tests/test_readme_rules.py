"""The README documents every rule of the table (by its name)."""

from __future__ import annotations

from pathlib import Path

from proxbus_ingest_syslog.rules import RULES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_rule_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [r.name for r in RULES if f"(`{r.name}`)" not in text]
    assert not missing, missing
