"""The README's command reference matches the app, and every command's help ends with an example."""

from pathlib import Path

import typer

from ddream.cli import app
from ddream.reference import splice

ROOT = Path(__file__).resolve().parents[1]


def test_readme_command_reference_matches_the_app():
    readme = (ROOT / "README.md").read_text()
    assert splice(readme) == readme, "run `python -m ddream.reference README.md`"


def test_every_command_and_option_has_help_and_every_command_an_example():
    for name, command in typer.main.get_command(app).commands.items():
        assert command.help and command.help.strip().splitlines()[-1].startswith(
            "Example: ddream"
        ), name
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                assert param.help, f"{name} {param.name}"
