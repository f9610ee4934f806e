"""The seams the code promises (docs/architecture.md), checked on the source and in fresh processes."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dmo", "workers", "storage", "dashboards")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py") if "migrations" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return done.stdout.strip()


def test_only_storage_touches_optuna_s_private_storage() -> None:
    allowed = {"storage/optuna_trials.py", "dmo/search/study.py"}
    offenders = [_rel(p) for p in _modules() if "._storage" in p.read_text(encoding="utf-8")]
    assert set(offenders) <= allowed, offenders
    assert "storage/optuna_trials.py" in offenders


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_cli_reaches_workers_through_one_entry_point() -> None:
    reached = {}
    for path in (REPO / "dmo" / "cli").glob("*.py"):
        found = {m for m in _imported_modules(path) if m == "workers" or m.startswith("workers.")}
        if found:
            reached[path.name] = found
    assert reached, "the CLI runs work on Ray somewhere"
    assert {m for found in reached.values() for m in found} == {"workers", "workers.api"}, reached


def test_the_library_never_imports_workers() -> None:
    library = [p for p in (REPO / "dmo").rglob("*.py") if "cli" not in p.parts]
    offenders = [_rel(p) for p in library if any(m.startswith("workers") for m in _imported_modules(p))]
    assert offenders == []


# Store methods that write rows, and the one module per record kind that calls them.
WRITES = ("start_model", "beat_model", "finish_model", "fail_model", "create_search", "set_search_status", "record_trial",
          "create_validation", "record_mixture_result", "finish_validation", "fail_validation", "record_recipe")
WRITERS = {"dmo/training/jobs.py", "dmo/search/searches.py", "dmo/fidelity/validate.py", "dmo/recipes/export.py"}


def test_rows_are_written_by_one_module_per_record_kind() -> None:
    writers = set()
    for path in _modules():
        if path.parts[len(REPO.parts)] == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in WRITES and isinstance(node.ctx, ast.Load):
                writers.add(_rel(path))
    assert writers == WRITERS


LAZY_PACKAGES = ("dmo.config", "dmo.data", "dmo.models", "dmo.merging", "dmo.evaluation", "dmo.fidelity",
                 "dmo.recipes", "dmo.training")


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_lazy_export_is_what_it_names_even_after_every_submodule_is_imported(name: str) -> None:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
        importlib.import_module(info.name)
    for export in package.__all__:
        value = getattr(package, export)
        assert not isinstance(value, type(sys)), f"{name}.{export} is a module, not the exported object"
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__name__ == export


def test_the_command_line_imports_no_heavy_library() -> None:
    heavy = ("torch", "transformers", "ray", "optuna", "mergekit", "sqlalchemy", "pydantic", "streamlit")
    code = f"import sys, dmo.cli.main; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    assert json.loads(_fresh("import json; " + code)) == []


def test_importing_dmo_changes_no_global_state() -> None:
    code = (
        "import json, os, warnings\n"
        "os.environ.pop('RAY_AUTH_MODE', None)\n"
        "import optuna, ray, torch, transformers, peft, sqlalchemy, safetensors\n"  # their own import effects
        "before = (os.environ.get('RAY_AUTH_MODE'), list(warnings.filters), optuna.logging.get_verbosity())\n"
        "import workers.api, workers.training, dmo.search.study, dmo.search.driver, dmo.models.checkpoint\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "after = (os.environ.get('RAY_AUTH_MODE'), list(warnings.filters), optuna.logging.get_verbosity())\n"
        "print(json.dumps([before == after, 'mod_mllm' in CONFIG_MAPPING]))"
    )
    assert json.loads(_fresh(code)) == [True, False]


def test_torch_threads_are_set_only_at_the_edge() -> None:
    setters = [_rel(p) for p in _modules() if "set_num_threads" in p.read_text(encoding="utf-8")]
    assert setters == ["dmo/runtime.py"]
