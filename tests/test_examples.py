"""The example CI workflows call the commands and options that exist, and keep the reports.

A workflow copied into another repository fails there, late and far away, when an
option was renamed here; this catches it when the rename happens.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples" / "github").glob("*.yml"))


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise AssertionError("harness has no subcommands")


def _commands(text: str, program: str) -> list[list[str]]:
    """Each shell command line that runs ``program``, joined across backslash continuations."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        start = line.find(f"{program} ")
        if start < 0 or line.lstrip().startswith("#"):
            continue
        command = line[start:].split("||")[0].split("&&")[0]
        found.append(shlex.split(command.replace("$", "")))
    return found


def test_there_are_examples_for_each_provider_and_the_load_comparison() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"gate-local.yml", "gate-docker.yml", "load-comparison.yml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_harness_options_in_the_example_exist(path: Path) -> None:
    text = path.read_text()
    for argv in _commands(text, "harness"):
        command = argv[1]
        if command not in ("gate", "report"):
            continue  # other subcommands are checked by their own tests
        known = set(_subcommand(command)._option_string_actions)
        used = {a for a in argv[2:] if a.startswith("--")}
        assert used <= known, f"{path.name}: harness {command} has no {used - known}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_keeps_the_reports_even_when_the_gate_fails(path: Path) -> None:
    text = path.read_text()
    upload = text[text.index("actions/upload-artifact") - 200 :]
    assert "if: always()" in upload
    assert "path: reports/" in upload


def test_pytest_options_in_the_example_exist() -> None:
    text = (EXAMPLES[0].parent / "gate-pytest.yml").read_text()
    plugin = Path(__file__).resolve().parent.parent / "harness" / "testing"
    declared = set(re.findall(r'"(--pg-[a-z-]+)"', "".join(
        p.read_text() for p in plugin.glob("fix_*.py")
    )))  # fmt: skip
    for argv in _commands(text, "pytest"):
        used = {a for a in argv if a.startswith("--pg-")}
        assert used
        assert used <= declared, used - declared
