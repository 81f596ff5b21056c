"""The README's command reference matches the app, and every command's help ends with an example."""

import re
from pathlib import Path

import typer

from ddream.cli import app
from ddream.reference import splice

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_reference_matches_the_app():
    reference = (ROOT / "docs" / "reference.md").read_text()
    assert splice(reference) == reference, "run `python -m ddream.reference docs/reference.md`"


def test_every_command_and_option_has_help_and_every_command_an_example():
    for name, command in typer.main.get_command(app).commands.items():
        assert command.help and command.help.strip().splitlines()[-1].startswith(
            "Example: ddream"
        ), name
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                assert param.help, f"{name} {param.name}"


def test_the_python_example_runs_as_written(trained_state, tmp_path, monkeypatch):
    """docs/sampling.md's "From Python" block, run on a tiny trained state dir."""
    import shutil

    import numpy as np
    from PIL import Image, ImageDraw

    text = (ROOT / "docs" / "sampling.md").read_text()
    section = text[text.index("## From Python") :]
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


# the development machine's folders (written in pieces, so that this file does not name them)
DEV_PATHS = re.compile("(?<![\\w.])(" + "|".join(["/" + "work/", "/" + "root/", "/" + "home/\\w+/",
                                                    "\\.\\./" + "shared/", "/" + "tmp/pytest-"]) + ")")  # fmt: skip
SKIP = {
    ".git",
    ".venv",
    ".hypothesis",
    ".ruff_cache",
    ".pytest_cache",
    "__pycache__",
    "ddream.egg-info",
}


def tracked_text_files() -> list[Path]:
    """The repository's text files (git's list where there is one, else the folder's)."""
    import subprocess

    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split()  # fmt: skip
        files = [ROOT / n for n in names]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if not SKIP & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file() and p.suffix not in (".png", ".gif", ".safetensors")]


def test_no_tracked_file_names_a_development_machine_path():
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                  for m in DEV_PATHS.finditer(text)]  # fmt: skip
    assert found == [], found[:10]


def test_the_guard_sees_such_a_path():
    assert DEV_PATHS.search("--data-dir ." + "./shared/data/mnist")
    assert DEV_PATHS.search("--state RUNS/x or /" + "work/runs/x")
    assert not DEV_PATHS.search("--data-dir DIR --state-dir RUNS/ref, a framework/worker")


def test_the_readme_is_short_and_every_link_of_the_docs_leads_somewhere():
    """The README stays a few hundred lines at most, and each relative link or picture in it and in
    docs/ names a file that exists."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    broken = []
    for page in [readme, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
