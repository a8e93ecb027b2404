"""Load YAML safely and remember where every key came from.

Config errors must say file:line. `yaml.safe_load` loses positions, so we compose the node tree
once with the safe loader (no code runs, no custom tags) and build two things from it: the plain
data, and a map from key path (('workloads', 0, 'params', 'batch_size')) to 1-based line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_SUITE_BYTES = 1_000_000  # a suite is a few KiB; anything this large is not a suite file

Path_ = tuple[Any, ...]


@dataclass
class YamlSource:
    """Parsed YAML plus the line of every key path."""

    path: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, key_path: Path_) -> int | None:
        """Line of the deepest prefix of `key_path` that exists in the file."""
        for cut in range(len(key_path), -1, -1):
            line = self.lines.get(tuple(key_path[:cut]))
            if line is not None:
                return line
        return None


class YamlLoadError(ValueError):
    """The file is not readable YAML; the message already says where."""


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise YamlLoadError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise YamlLoadError(f"{path}: cannot read ({exc.strerror})") from None
    if p.is_dir():
        raise YamlLoadError(f"{path}: is a directory, expected a suite YAML file")
    if size > MAX_SUITE_BYTES:
        raise YamlLoadError(f"{path}: {size} bytes is over the {MAX_SUITE_BYTES}-byte limit for a suite file")
    try:
        return p.read_bytes().decode("utf-8")
    except PermissionError:
        raise YamlLoadError(f"{path}: permission denied; make the file readable") from None
    except UnicodeDecodeError as exc:
        raise YamlLoadError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise YamlLoadError(f"{path}: cannot read ({exc.strerror})") from None


def load_yaml(path: str | Path) -> YamlSource:
    """Read `path` with the safe loader; raise YamlLoadError with file:line on bad YAML."""
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlLoadError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise YamlLoadError(f"{path}: YAML nested too deeply") from None
    source = YamlSource(path=str(path), data=data)
    if node is not None:
        try:
            _collect_lines(node, (), source.lines)
        except RecursionError:
            raise YamlLoadError(f"{path}: YAML nested too deeply") from None
    return source


def _collect_lines(node: yaml.Node, prefix: Path_, out: dict[Path_, int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = getattr(key_node, "value", None)
            child = prefix + (key,)
            out[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (i,)] = item.start_mark.line + 1
            _collect_lines(item, prefix + (i,), out)
