"""Load a YAML configuration into :class:`DmoConfig`, once, at the edge.

Validation errors name the file, the line and the field path, and say what is
allowed, so a user can fix a typo without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dmo.config.schema import DmoConfig
from dmo.errors import ConfigError


def load_config(path: str | Path) -> DmoConfig:
    """Parse and validate a YAML config; relative paths resolve against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", where=str(path)) from None
    except OSError as error:
        raise ConfigError(f"cannot read config file: {error.strerror}", where=str(path)) from None
    return parse_config(text, source=str(path), base_dir=path.parent)


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> DmoConfig:
    try:
        node, data = _parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"not valid YAML: {problem}", where=where) from None
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping with at least a 'domains' list", where=source)
    _refuse_duplicate_keys(node, source)
    if base_dir is not None:
        data = _resolve_paths(data, base_dir)
    try:
        return DmoConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, node, source), where=None) from None


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data built from it, in one parse.

    libyaml's parser when PyYAML has it: it is ten times faster than the pure-Python one, and
    every command that reads a config pays for the parse in its start-up.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _describe(error: ValidationError, node: yaml.Node | None, source: str) -> str:
    lines = []
    issues = error.errors()
    for issue in issues:
        loc = tuple(p for p in issue["loc"] if not _is_union_tag(p))
        if issue["type"] == "too_short" and any(other["loc"][: len(issue["loc"])] == issue["loc"]
                                                and len(other["loc"]) > len(issue["loc"]) for other in issues):
            continue  # a list emptied by its own invalid items: those items are the news
        field = _dotted(loc) or "<root>"
        line = _line_of(node, loc)
        where = f"{source}:{line}" if line else source
        message = issue["msg"].removeprefix("Value error, ")
        if issue["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            message = "unknown field" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        elif issue["type"] == "missing":
            message = "required field is missing"
        elif issue["type"] == "union_tag_invalid":
            context = issue.get("ctx", {})
            message = f"unknown kind {context.get('tag')!r}; known: {context.get('expected_tags')}"
        lines.append(f"{where}: field '{field}': {message}")
    return "invalid config\n  " + "\n  ".join(lines)


def _refuse_duplicate_keys(node: yaml.Node | None, source: str, path: str = "") -> None:
    """YAML lets a second `training:` silently replace the first; a config must not."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            name = getattr(key, "value", None)
            field = f"{path}.{name}" if path else str(name)
            if name in seen:
                raise ConfigError(
                    f"field '{field}' is given twice (first on line {seen[name]}); the second would "
                    "silently replace the first", where=f"{source}:{line}",
                )
            seen[name] = line
            _refuse_duplicate_keys(value, source, field)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, source, f"{path}[{index}]")


def with_overrides(config: DmoConfig, flags: dict[str, tuple[str, Any]]) -> DmoConfig:
    """``config`` with command-line values applied and validated like the file.

    ``flags`` maps a dotted field (``search.sampler``) to (the flag's name, its
    value); None values are skipped. An invalid value is reported against the
    flag (``--sampler``), before anything runs.
    """
    given = {field: (flag, value) for field, (flag, value) in flags.items() if value is not None}
    if not given:
        return config
    data = config.model_dump(mode="json")
    for field, (_, value) in given.items():
        *parents, leaf = field.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[leaf] = value
    try:
        return DmoConfig.model_validate(data)
    except ValidationError as error:
        issue = error.errors()[0]
        dotted = _dotted(tuple(p for p in issue["loc"] if not _is_union_tag(p)))
        flag = next((f for field, (f, _) in given.items() if dotted.startswith(field)), None)
        where = flag or ", ".join(f for f, _ in given.values())
        raise ConfigError(issue["msg"].removeprefix("Value error, "), where=where) from None


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions add the tag (a domain's kind, a model's backend) to the location.
    return part in ("synthetic", "jsonl", "mod_mllm", "hf")


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node on the path `loc`."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    best = key.start_mark.line + 1
                    node = value
                    break
            else:
                return best
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names a mapping at `loc` accepts (walks the pydantic schema)."""
    model: Any = DmoConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    from typing import get_args

    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make JSONL source and benchmark paths and checkpoint paths relative to the config file, not the working directory."""
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str) and not Path(model["path"]).is_absolute():
        model["path"] = str(base_dir / model["path"])
    training = data.get("training")
    shipped = training.get("pretrained_base") if isinstance(training, dict) else None
    if isinstance(shipped, dict) and isinstance(shipped.get("path"), str) and not Path(shipped["path"]).is_absolute():
        shipped["path"] = str(base_dir / shipped["path"])
    domains = data.get("domains")
    if isinstance(domains, list):
        for domain in domains:
            source = domain.get("source") if isinstance(domain, dict) else None
            if isinstance(source, dict) and source.get("kind") == "jsonl":
                for split in ("train", "dev", "test"):
                    if isinstance(source.get(split), str) and not Path(source[split]).is_absolute():
                        source[split] = str(base_dir / source[split])
    benchmarks = data.get("benchmarks")
    if isinstance(benchmarks, list):
        for benchmark in benchmarks:
            if isinstance(benchmark, dict) and isinstance(benchmark.get("file"), str) \
                    and not Path(benchmark["file"]).is_absolute():
                benchmark["file"] = str(base_dir / benchmark["file"])
            task = benchmark.get("lmms_eval") if isinstance(benchmark, dict) else None
            if isinstance(task, dict) and isinstance(task.get("tasks_dir"), str) \
                    and not Path(task["tasks_dir"]).is_absolute():
                task["tasks_dir"] = str(base_dir / task["tasks_dir"])
    return data
