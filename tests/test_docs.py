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


def test_the_readme_python_example_runs_as_written(trained_state, tmp_path, monkeypatch):
    """The README's "From Python" block, run on a tiny trained state dir."""
    import shutil

    import numpy as np
    from PIL import Image, ImageDraw

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### From Python") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 12)]
    shutil.copytree(trained_state, tmp_path / "ddream-state")
    im = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(im).line([(30, 8), (32, 52)], fill=0, width=6)
    im.save(tmp_path / "my_digit.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    digits = namespace["digits"]
    assert digits.shape == (16, 28, 28) and digits.dtype.is_floating_point is False
    assert Image.open(tmp_path / "threes_and_eights.png").size[0] > 8 * 28
    assert namespace["recon"].shape == (1, 28, 28) and float(namespace["psnr"][0]) > 5
    assert namespace["z"].ndim == 4 and namespace["teacher"].shape == (4, 28, 28)
    assert np.asarray(namespace["digits"]).max() > 0
