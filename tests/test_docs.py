"""The README documents every setting and every command; these fail when one is added silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from geobatch.cli import app
from geobatch.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    assert re.search(rf"^\| `GEOBATCH_{name.upper()}` \|", README, re.MULTILINE), name


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    click_group = typer.main.get_command(group)
    names = []
    for name, command in click_group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            names += [f"{prefix}{name} {sub}" for sub in command.commands]
        else:
            names.append(prefix + name)
    return names


@pytest.mark.parametrize("command", _commands(app))
def test_every_command_is_in_the_readme(command: str) -> None:
    first, *rest = command.split()
    pattern = rf"geobatch {first}\b" if not rest else rf"geobatch {first} [^\n]*\b{rest[0]}\b"
    assert re.search(pattern, README), command


def _routes() -> list[str]:
    from geobatch.api.app import create_app

    paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
    return sorted(path for path in paths if path.startswith("/v1/"))


@pytest.mark.parametrize("path", _routes())
def test_every_api_route_is_in_the_readme(path: str) -> None:
    """Each route appears with its placeholders written as shell variables or example values."""
    pieces = re.split(r"\{[a-z_]+\}", path)
    pattern = r"[^/\s?\"]+".join(re.escape(piece) for piece in pieces)
    assert re.search(pattern + r"(?![\w/])", README), path


def test_readme_opens_with_the_two_commands() -> None:
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == [
        "make demo",
        "make test",
    ]
