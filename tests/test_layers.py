"""The package's layers, written once: a module imports only from its own layer or those below it.
Read from the source (ast), so it runs in the quick loop and catches an import wherever it hides."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ddream"

# top to bottom; every module of the package is in exactly one layer (a package name covers its modules)
LAYERS = {
    "face": ["__init__", "__main__", "cli", "cli_app", "cli_train", "cli_use", "cli_edit", "cli_options", "cli_settings", "reports", "reference",
             "page", "page_edit", "api"],
    "use": ["demo", "demo_edit", "sampler", "editor", "completer", "stages.edit", "stages.sample", "stages.reconstruct", "stages.evaluate",
            "stages.export", "stages.onnx_export", "stages.card", "stages.pipeline", "plots"],
    "train": ["stages.train_ae", "stages.encode", "stages.train_dit", "stages.distill", "pairs",
              "student", "student_losses", "judge", "watch",
              "stages.record", "train", "distributed", "stages.__init__"],
    "files": ["artifacts", "state", "record_check", "manifest", "checkpoint", "status", "history"],
    "core": ["config", "config_rules", "presets", "config_file", "models", "flow", "metrics", "data", "userimage", "masks",
             "render", "runtime", "progress", "errors", "limits", "files", "version", "registry"],
}  # fmt: skip
ORDER = list(reversed(LAYERS))  # core first


def layer_of(module: str) -> str | None:
    for layer, members in LAYERS.items():
        if any(module == m or module.startswith(m + ".") for m in members):
            return layer
    return None


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imported(tree: ast.AST) -> list[str]:
    """Every ddream module this source imports, at the top or inside a function."""
    names = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "ddream"
        ):
            if node.module == "ddream":  # from ddream import x: x is a module or the package root
                names += [a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__"
                          for a in node.names]  # fmt: skip
            else:
                names.append(node.module.removeprefix("ddream."))
        elif isinstance(node, ast.Import):
            names += [
                a.name.removeprefix("ddream.") for a in node.names if a.name.startswith("ddream.")
            ]
    return names


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) is None]
    assert missing == [], f"place these modules in a layer of LAYERS: {missing}"


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for other in imported(ast.parse(path.read_text())):
            if ORDER.index(layer_of(other)) > ORDER.index(layer_of(me)):
                wrong.append(f"{me} ({layer_of(me)}) imports {other} ({layer_of(other)})")
    assert wrong == []


def test_the_guard_sees_an_import_inside_a_function():
    tree = ast.parse("def f():\n    from ddream.cli import app\n    import ddream.sampler\n")
    assert imported(tree) == ["cli", "sampler"]
    assert ORDER.index(layer_of("cli")) > ORDER.index(layer_of("flow"))


def stage_lists(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines of literal tuples, lists, sets and dict keys that name two stages or more."""
    found = []
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) or items is None:
            continue
        named = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
        if len(named) >= 2:
            found.append(node.lineno)
    return found


# Names that are not lists of stages, though they share stage names: the settings tables [ae], [dit],
# [distill] (config.SECTIONS), and the distill record's inputs, which name the stages it reads.
NOT_STAGE_LISTS = {"config": 1, "stages.distill": 1}


def test_the_stages_are_listed_in_the_registry_alone():
    from ddream.registry import STAGES

    names = set(STAGES)
    listed = {
        module_name(p): lines
        for p in sorted(PACKAGE.rglob("*.py"))
        if module_name(p) != "registry" and (lines := stage_lists(ast.parse(p.read_text()), names))
    }
    extra = {m: lines for m, lines in listed.items() if len(lines) > NOT_STAGE_LISTS.get(m, 0)}
    assert extra == {}, f"list stages through ddream/registry.py, not here: {extra}"
    assert stage_lists(ast.parse('x = {"ae": 1, "dit": 2}\ny = ("ae", "b")'), names) == [1]
