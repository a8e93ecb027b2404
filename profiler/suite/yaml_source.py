"""Load YAML safely and remember where every key came from.

Config errors must say file:line. `yaml.safe_load` loses positions, so we compose the node tree
once with a safe loader (no code runs, no custom tags) and build two things from it: the plain
data, and a map from key path (('workloads', 0, 'params', 'batch_size')) to 1-based line number.

The loader is bounded, because suites come from pull requests and copied run directories: a
file (or a `--set` value) is refused in one line when it nests more than MAX_DEPTH levels, when
its aliases expand to more than MAX_NODES values (a "billion laughs" file of 1 KiB), when an
alias lies inside its own anchor (a recursive structure), or when one mapping repeats a key (the
last would silently win). Counting is by node identity, so it costs time linear in the file.
Plain scalars are typed by the YAML 1.2 core schema, never YAML 1.1's wider forms, which change values silently:
ints are `[-+]?[0-9]+` (decimal: `010` is 10, not 8), `0o17` and `0x1F`; floats `1.5`, `1e-3` (the number 0.001, not
the string '1e-3'), `.5`, `.inf`, `.nan`; booleans true/True/TRUE/false/False/FALSE; null `~`, null/Null/NULL or
nothing. Everything else is text (`yes`, `on`, `1_000`, `0b11`, `1:00`), which a typed field then refuses by its type.
An explicit tag (`!!int 0b11`) is held to the same forms. Dates (`2001-02-03`) stay YAML 1.1 timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import shown
from ..files import UnreadableFile, read_bounded

MAX_SUITE_BYTES = 1_000_000  # a suite is a few KiB; anything this large is not a suite file
MAX_NODES = 20_000
"""Values (scalars, lists, mappings, keys) once every alias is expanded. The largest suite in configs/ holds 179;
refusing a file at this count takes well under a second (the pure-Python composer reads ~50,000 values a second)."""
MAX_DEPTH = 64
"""Levels of nesting, aliases expanded; a suite nests fewer than ten."""

Path_ = tuple[Any, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"


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


class YamlBoundError(Exception):
    """Well-formed YAML the suite reader refuses (too deep, too large once expanded, recursive, a repeated key).

    `line` is 1-based, `problem` says what is wrong and what to do."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


class SuiteLoader(yaml.SafeLoader):
    """The safe loader with the YAML 1.2 core schema's scalars and the bounds of this module (see its docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0  # distinct nodes so far
        self._open_anchors: set[str] = set()
        self._size: dict[int, tuple[int, int]] = {}  # id(node) -> (values once aliases are expanded, height)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlBoundError(
                    event.start_mark.line + 1,
                    f"alias *{shown(event.anchor)} lies inside its own anchor &{shown(event.anchor)}: a recursive structure; write the value out",
                )
            return super().compose_node(parent, index)  # a node already composed and counted
        if self._depth >= MAX_DEPTH:
            raise YamlBoundError(event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; a suite nests a few levels")
        self._composed += 1
        if self._composed > MAX_NODES:  # refused as it is read: composing a megabyte of values alone takes seconds
            raise YamlBoundError(event.start_mark.line + 1, f"more than {MAX_NODES:,} values; a suite holds a few hundred")
        anchor = event.anchor
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)
        assert node is not None  # PyYAML composes a node here or raises
        self._count(node)
        return node

    def _count(self, node: yaml.Node) -> None:
        """Record `node`'s expanded size and height from its children's (each counted once, when composed)."""
        if isinstance(node, yaml.ScalarNode):
            self._size[id(node)] = (1, 1)
            return
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node)
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value
        sizes = [self._size[id(child)] for child in children]
        count = 1 + sum(s[0] for s in sizes)
        height = 1 + max((s[1] for s in sizes), default=0)
        line = node.start_mark.line + 1
        if count > MAX_NODES:
            raise YamlBoundError(
                line,
                f"this value expands to more than {MAX_NODES:,} values through its aliases (*name); a suite holds a few hundred: write it out",
            )
        if height > MAX_DEPTH:
            raise YamlBoundError(line, f"nested more than {MAX_DEPTH} levels deep once its aliases (*name) are expanded; a suite nests a few levels")
        self._size[id(node)] = (count, height)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar its tag cannot hold (`2001-02-30`, `!!int abc`) is a marked YAML error, not a ValueError."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            tag = str(node.tag).rpartition(":")[2]
            value = f"'{shown(str(node.value))}'" if isinstance(node, yaml.ScalarNode) else f"this {tag}"
            why = f" ({shown(str(exc))})" if isinstance(exc, (ValueError, OverflowError)) else ""
            raise yaml.constructor.ConstructorError(None, None, f"cannot read {value} as {tag}{why}; quote it to keep it as text", node.start_mark) from None


CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
CORE_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
CORE_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_CORE_TAGS = ("bool", "int", "float")


def _core_schema(loader: type[yaml.SafeLoader]) -> None:
    """Give `loader` the YAML 1.2 core schema's bool, int and float resolvers and constructors in place of YAML 1.1's
    (and drop 1.1's `=` value tag); null, merge keys (`<<`) and timestamps stay. Implicit resolvers see plain scalars
    only: a quoted "010" or "yes" stays a string."""
    dropped = {f"tag:yaml.org,2002:{t}" for t in (*_CORE_TAGS, "value")}
    loader.yaml_implicit_resolvers = {
        first: kept for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items() if (kept := [r for r in resolvers if r[0] not in dropped])
    }
    loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile("^(?:" + "|".join(CORE_BOOL) + ")$"), list("tTfF"))
    loader.add_implicit_resolver("tag:yaml.org,2002:int", CORE_INT, list("-+0123456789"))  # before float: `10` is an int
    loader.add_implicit_resolver("tag:yaml.org,2002:float", CORE_FLOAT, list("-+.0123456789"))
    for tag, build in zip(_CORE_TAGS, (_core_bool, _core_int, _core_float), strict=True):
        loader.add_constructor(f"tag:yaml.org,2002:{tag}", build)


def _core_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    """A YAML 1.2 boolean; ValueError for 1.1's yes/no/on/off (SuiteLoader.construct_object makes it a marked error)."""
    value = loader.construct_scalar(node)
    if value not in CORE_BOOL:
        raise ValueError("a boolean is true or false")
    return CORE_BOOL[value]


def _core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 integer: decimal (leading zeros are decimal), 0o octal or 0x hexadecimal; ValueError otherwise."""
    value = str(loader.construct_scalar(node))
    if not CORE_INT.match(value):
        raise ValueError("an integer is written [-+]digits, 0o octal or 0x hexadecimal")
    if value[:2] in ("0o", "0x"):
        return int(value[2:], 8 if value[1] == "o" else 16)
    return int(value, 10)


def _core_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    """A YAML 1.2 float (an integer's forms are floats too under an explicit `!!float`); ValueError otherwise."""
    value = str(loader.construct_scalar(node))
    if CORE_INT.match(value) and value[:2] not in ("0o", "0x"):
        return float(int(value, 10))
    if not CORE_FLOAT.match(value):
        raise ValueError("a float is written like 1.5, 1e-3, .inf or .nan")
    if value.lstrip("+-").lower() in (".inf", ".nan"):
        return float(value.replace(".", "", 1))
    return float(value)


_core_schema(SuiteLoader)


class SuiteDumper(yaml.SafeDumper):
    """The safe dumper, quoting every string that YAML 1.1 or the 1.2 core schema would read as another type
    (`'0o10'`, `'+.5'`, `'1e3'` as well as `'yes'`, `'010'`), so what it writes reads back equal with either."""


SuiteDumper.add_implicit_resolver("tag:yaml.org,2002:int", CORE_INT, list("-+0123456789"))
SuiteDumper.add_implicit_resolver("tag:yaml.org,2002:float", CORE_FLOAT, list("-+.0123456789"))


def dump(data: Any) -> str:
    """`data` (plain mappings, lists, strings, numbers, booleans, None) as YAML that SuiteLoader reads back equal, in
    the given key order (config.resolved.yaml)."""
    return yaml.dump(data, Dumper=SuiteDumper, sort_keys=False, allow_unicode=False)


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    """YamlBoundError at the second of two equal keys of one mapping; merge keys (`<<`) are not keys."""
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        first = seen.get((key_node.tag, key_node.value))
        if first is None:
            seen[(key_node.tag, key_node.value)] = key_node
        else:
            raise YamlBoundError(
                key_node.start_mark.line + 1,
                f"duplicate key '{shown(key_node.value)}' (first at line {first.start_mark.line + 1}); keep one of them",
            )


def parse(text: str) -> tuple[Any, yaml.Node | None]:
    """(data, root node) of one YAML document, composed once and bounded.

    Raises YamlBoundError (refused by a bound), yaml.YAMLError (not YAML), never RecursionError."""
    loader = SuiteLoader(text)
    try:
        node = loader.get_single_node()
        try:
            data = loader.construct_document(node) if node is not None else None
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:  # a constructor's own failure, not a scalar's
            raise yaml.YAMLError(f"cannot build the data ({shown(str(exc))})") from None
    finally:
        loader.dispose()
    return data, node


def parse_value(text: str) -> Any:
    """A `--set` value as YAML, with the suite file's loader and bounds ('4' -> 4, '1e-3' -> 0.001, 'bf16' -> 'bf16').

    Raises YamlBoundError or yaml.YAMLError like `parse`."""
    return parse(text)[0]


def _code(character: Any) -> int:
    """The code point PyYAML's ReaderError carries (an int, or a one-character str or bytes)."""
    return character if isinstance(character, int) else ord(character[:1] or "\0")


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a suite file, at most MAX_SUITE_BYTES; YamlLoadError in one line for anything else (a FIFO,
    a device such as /dev/zero or a directory is refused, never read: profiler/files.py)."""
    where = shown(str(path), 200)
    try:
        data = read_bounded(path, MAX_SUITE_BYTES)
    except FileNotFoundError:
        raise YamlLoadError(f"{where}: no such file; check the path") from None
    except UnreadableFile as exc:
        raise YamlLoadError(f"{where}: {exc}; give the suite's YAML file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlLoadError(f"{where}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def load_yaml(path: str | Path) -> YamlSource:
    """Read `path` with the bounded safe loader; raise YamlLoadError with file:line on bad or refused YAML."""
    text = read_text(path)
    where = shown(str(path), 200)
    try:
        data, node = parse(text)
    except YamlBoundError as exc:
        raise YamlLoadError(f"{where}:{exc.line}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{where}:{mark.line + 1}" if mark else where
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlLoadError(f"{where}: malformed YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, most control characters)
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise YamlLoadError(f"{where}:{line}: malformed YAML: character U+{_code(exc.character):04X} is not allowed in YAML; remove it") from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"{where}: malformed YAML: {str(exc).splitlines()[0]}") from None
    source = YamlSource(path=str(path), data=data)
    if node is not None:
        _collect_lines(node, source.lines)
    return source


def _collect_lines(root: yaml.Node, out: dict[Path_, int]) -> None:
    """The line of every key path (merged keys at the line they were written); iterative, and bounded by MAX_NODES."""
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        out.setdefault(prefix, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            pending = []
            for key_node, value_node in node.value:  # a key written after a merged one (<<) wins, as in the data
                child = prefix + (getattr(key_node, "value", None),)
                out[child] = key_node.start_mark.line + 1
                pending.append((value_node, child))
            stack.extend(reversed(pending))  # visited in document order, so later keys' lines win below them too
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out[prefix + (i,)] = item.start_mark.line + 1
            stack.extend((item, prefix + (i,)) for i, item in reversed(list(enumerate(node.value))))
