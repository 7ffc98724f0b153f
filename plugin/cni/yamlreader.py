"""One YAML document read with the standard library: what kubeconfig files are written in.

The CNI plugin runs on the host for every pod sandbox and imports nothing but the
standard library (DESIGN.md), so it cannot use PyYAML; yet it must read whatever
kubeconfig kubectl reads, as written by kubectl, kubeadm, kind, k3s, the cloud CLIs or by
hand. This module reads YAML 1.1 as PyYAML's ``safe_load`` does for everything such a
file can hold:

- block mappings and sequences (including ``- key: value`` items, sequences at their
  key's indentation and explicit ``? key`` entries), flow mappings and sequences
  (nested, over several lines, JSON);
- plain, single- and double-quoted scalars (every escape, folded over several lines) and
  literal/folded block scalars (``|``, ``>``, with chomping and indentation indicators);
- comments, ``---``/``...`` markers, ``%YAML``/``%TAG`` directives before ``---``;
- anchors, aliases and ``<<`` merge keys; the tags ``!!str``, ``!!map``, ``!!seq`` and ``!``
  (which, as in PyYAML, changes nothing);
- plain scalars typed as PyYAML types them: null, booleans (``true``, ``yes``, ``on``,
  ...), decimal/octal/hexadecimal/binary integers, floats (with a dot, ``.inf``, ``.nan``).
  Timestamps and sexagesimal numbers stay strings, as kubectl reads them.

What it refuses, each with the line: several documents in one file (kubectl reads the
first and ignores the rest; a second document in a kubeconfig is a mistake worth
reporting), a mapping or a sequence as a key, other tags, unknown directives and aliases
to an anchor not yet closed (both refused by kubectl's go-yaml too), nesting deeper
than :data:`plugin.model.limits.MAX_DEPTH`, integers longer than
:data:`plugin.model.limits.INT_MAX_DIGITS` digits and aliases that expand beyond
:data:`MAX_NODES` values (a "billion laughs" file). A repeated key keeps its last value,
as kubectl and PyYAML do. The YAML 1.1 line breaks NEL, LS and PS (U+0085, U+2028,
U+2029) are read as ordinary characters.

The reader is recursive descent over the text with regular expressions for the long
runs (a kubeconfig's base64 lines are kilobytes): a 5 kB kubeadm ``admin.conf`` parses
in about 0.4 ms (``bench/kubeconfig.py``). Exceptions::

    YamlError(ValueError)   the message starts with ``line N:``
"""

from __future__ import annotations

import re

from plugin.model import limits

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

MAX_NODES = 100_000
"""Values a document may expand to through aliases: far beyond any kubeconfig (hundreds)."""


class YamlError(ValueError):
    """Text that is not YAML this module reads; the message starts with ``line N:``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


# Plain-scalar typing: PyYAML's implicit resolvers (YAML 1.1), without timestamps and
# sexagesimal numbers (strings for kubectl, and PyYAML quotes such strings when it writes).
_BOOLS = {
    "true": True, "True": True, "TRUE": True, "yes": True, "Yes": True, "YES": True,
    "on": True, "On": True, "ON": True,
    "false": False, "False": False, "FALSE": False, "no": False, "No": False, "NO": False,
    "off": False, "Off": False, "OFF": False,
}
_NULLS = {"", "~", "null", "Null", "NULL"}
_INT = re.compile(r"[-+]?(?:0b[01_]+|0[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?")
_INF_NAN = {".inf": "inf", ".Inf": "inf", ".INF": "inf", "+.inf": "inf", "+.Inf": "inf", "+.INF": "inf",
            "-.inf": "-inf", "-.Inf": "-inf", "-.INF": "-inf", ".nan": "nan", ".NaN": "nan", ".NAN": "nan"}

_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}

_BLANKS = re.compile(r"[ \t]*")
_SPACES = re.compile(r" *")
# Where a plain scalar stops on its line: a comment, or ": " (a key's end).
_PLAIN_END_BLOCK = re.compile(r"[ \t]+#|[ \t]*:(?:[ \t]|$)|[ \t]+$")
_PLAIN_END_FLOW = re.compile(r"[ \t]+#|[ \t]*:(?:[ \t,\[\]{}]|$)|[ \t]*[,\[\]{}]|[ \t]+$")
_KEY_END = re.compile(r"[ \t]#|:(?:[ \t]|$)")
_DOUBLE_RUN = re.compile(r'[^"\\\n]+')
_SINGLE_RUN = re.compile(r"[^'\n]+")
_NAME = re.compile(r"[^ \t\n,\[\]{}]+")  # tag names
_ANCHOR = re.compile(r"[0-9A-Za-z_-]+")  # anchor and alias names, as PyYAML and libyaml read them
_FLOW_BLANK = ("", " ", "\t", "\n", ",", "[", "]", "{", "}")
_MARKER = re.compile(r"(?:---|\.\.\.)(?=[ \t\n]|$)")
_HEADER = re.compile(r"([1-9]?)([+-]?)([1-9]?)[ \t]*(?:#[^\n]*)?(?=\n|$)")


def load(text: str) -> Any:
    """The one document in ``text`` as dicts, lists and scalars (None when it is empty)."""
    return _Reader(text).document()


def _spaces(count: int) -> str:
    return "1 space" if count == 1 else f"{count} spaces"


def _preview(text: str) -> str:
    import json

    return json.dumps(text if len(text) <= 40 else text[:37] + "...")


class _Reader:
    """Recursive descent over the text; ``pos`` always points at the next unread character."""

    def __init__(self, text: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.text = text
        self.pos = 0
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, values it holds)
        self.nodes = 0
        self.aliased = False

    # ------------------------------------------------------------------ positions

    def line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def column(self, pos: int | None = None) -> int:
        pos = self.pos if pos is None else pos
        return pos - (self.text.rfind("\n", 0, pos) + 1)

    def error(self, message: str, pos: int | None = None) -> YamlError:
        return YamlError(self.line(pos), message)

    def peek(self, offset: int = 0) -> str:
        return self.text[self.pos + offset : self.pos + offset + 1]

    def at_blank(self, offset: int = 0) -> bool:
        """Whether the character at ``pos + offset`` is a space, tab, line break or the end."""
        return self.peek(offset) in ("", " ", "\t", "\n")

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        return self.text[self.pos : end if end >= 0 else len(self.text)]

    def skip_blanks(self) -> None:
        self.pos = _BLANKS.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def skip_to_content(self) -> int:
        """Skip blanks, comments and line breaks; the column of the next content, or -1 at
        the end of the text or at a document marker (``---``/``...`` at column 0)."""
        text = self.text
        crossed = False
        while True:
            self.skip_blanks()
            ch = self.peek()
            if ch == "#":  # where a token may start, '#' starts a comment (as in PyYAML and libyaml)
                end = text.find("\n", self.pos)
                self.pos = end if end >= 0 else len(text)
                continue
            if ch == "\n":
                self.pos += 1
                crossed = True
                continue
            if ch == "":
                return -1
            column = self.column()
            if column == 0 and _MARKER.match(text, self.pos):
                return -1
            if crossed and "\t" in text[self.pos - column : self.pos]:
                raise self.error("tab in indentation; YAML indents with spaces only")
            return column

    def at_marker(self, marker: str) -> bool:
        return self.column() == 0 and _MARKER.match(self.text, self.pos) is not None \
            and self.text.startswith(marker, self.pos)

    def end_of_line(self, what: str) -> None:
        """After a quoted scalar or a flow collection in block context: nothing but a comment."""
        self.skip_blanks()
        if self.peek() in ("", "\n", "#"):
            return
        raise self.error(f"unexpected text after {what} (got {_preview(self.rest_of_line())})")

    def count(self, added: int = 1) -> None:
        self.nodes += added
        if self.nodes > MAX_NODES:
            raise self.error(f"the document holds more than {MAX_NODES} values (aliases expand to copies); "
                             "a kubeconfig holds a few hundred")

    def check_depth(self, depth: int) -> None:
        problem = limits.depth_problem(depth)
        if problem:
            raise self.error(f"the value {problem}")

    # ------------------------------------------------------------------ document

    def document(self) -> Any:
        column = self.skip_to_content()
        directives = False
        while column == 0 and self.peek() == "%":
            directive = self.rest_of_line()
            if not directive.startswith(("%YAML ", "%TAG ")):
                raise self.error(f"unknown directive {_preview(directive)}; only %YAML and %TAG exist")
            self.pos += len(directive)
            directives = True
            column = self.skip_to_content()
        if self.at_marker("---"):
            self.pos += 3
            value = self.block_node(-1, 0, inline_collections=False, sequence_at_indent=False)
        elif directives:
            raise self.error("a directive must be followed by the document start '---'")
        elif column == -1:
            value = None  # nothing, or only the end marker
        else:
            value = self.block_node(-1, 0, inline_collections=True, sequence_at_indent=False)
        column = self.skip_to_content()
        if column != -1:
            raise self.error(f"unexpected content {_preview(self.rest_of_line())} (its indentation matches "
                             "no mapping or sequence above it)")
        if self.at_marker("---"):
            raise self.error("a second document ('---'); a kubeconfig is one document")
        while self.at_marker("..."):
            self.pos += 3
            if self.skip_to_content() != -1 or self.at_marker("---"):
                raise self.error("content after the end of the document ('...'); a kubeconfig is one document")
        if self.aliased:
            self.check_depth(limits.value_depth(value))
        return value

    # ------------------------------------------------------------------ block context

    def properties(self) -> tuple[str | None, str | None]:
        """``&anchor`` and ``!tag`` in front of a node, in either order."""
        anchor = tag = None
        while self.peek() in ("&", "!"):
            start = self.pos
            kind = self.peek()
            match = (_ANCHOR if kind == "&" else _NAME).match(self.text, self.pos + 1)
            name = match.group() if match else ""
            if kind == "&":
                if not name or anchor is not None:
                    raise self.error("an anchor ('&') needs one name", start)
                anchor = name
            else:
                if tag is not None:
                    raise self.error("a node has at most one tag", start)
                tag = "!" + name
                if tag not in ("!", "!!str", "!!map", "!!seq"):
                    raise self.error(f"the tag {_preview(tag)} is not supported; plain values are typed as "
                                     "kubectl types them (only !, !!str, !!map and !!seq are accepted)", start)
            self.pos = start + 1 + len(name)
            if not self.at_blank() and self.peek() not in ",]}:":
                raise self.error(f"expected a space after {_preview(self.text[start:self.pos])}")
            self.skip_blanks()
        return anchor, tag

    def finish(self, value: Any, anchor: str | None, tag: str | None, start: int, nodes_before: int) -> Any:
        """Apply a node's tag and record its anchor."""
        if tag == "!!str":
            if isinstance(value, dict | list):
                raise self.error("the tag !!str is on a mapping or sequence", start)
            value = "" if value is None else value if isinstance(value, str) else self.text_of(start)
        elif tag == "!!map" and not isinstance(value, dict) and value is not None:
            raise self.error("the tag !!map is on something that is not a mapping", start)
        elif tag == "!!seq" and not isinstance(value, list) and value is not None:
            raise self.error("the tag !!seq is on something that is not a sequence", start)
        if anchor is not None:
            self.anchors[anchor] = (value, self.nodes - nodes_before)
        return value

    def text_of(self, start: int) -> str:
        """The source text of a plain scalar that a tag makes a string (``!!str 42``)."""
        return self.text[start : self.pos].strip()

    def alias(self) -> Any:
        start = self.pos
        match = _ANCHOR.match(self.text, self.pos + 1)
        name = match.group() if match else ""
        if name not in self.anchors:
            raise self.error(f"unknown alias {_preview('*' + name)}; an alias refers to an earlier '&anchor'", start)
        self.pos += 1 + len(name)
        value, weight = self.anchors[name]
        self.count(weight)
        self.aliased = True
        return value

    def block_node(self, indent: int, depth: int, *, inline_collections: bool, sequence_at_indent: bool) -> Any:
        """The node after an indicator (``key:``, ``- ``, ``---``), on this line or on the next ones.

        ``indent`` is the column of the collection that holds the node: the node's own
        lines must be indented deeper, except a sequence as a mapping's value
        (``sequence_at_indent``). A block collection may start on the indicator's line only
        in a sequence item (``- key: value``, ``- - x``): ``inline_collections``.
        """
        self.skip_blanks()
        start = self.pos
        nodes_before = self.nodes
        anchor, tag = self.properties()
        if self.peek() in ("", "\n", "#"):
            column = self.skip_to_content()
            is_item = column >= 0 and self.peek() == "-" and self.at_blank(1)
            if column == -1 or (column < indent + 1 and not (sequence_at_indent and column == indent and is_item)):
                self.count()
                return self.finish(None, anchor, tag, start, nodes_before)
            inline = True
        else:
            column = self.column()
            inline = inline_collections and anchor is None and tag is None
        ch = self.peek()
        value: Any
        if ch == "-" and self.at_blank(1):
            if not inline:
                raise self.error("a sequence cannot start on the line of its key; start it on the next line")
            value = self.block_sequence(column, depth)
        elif ch == "?" and self.at_blank(1):
            if not inline:
                raise self.error("a mapping cannot start on the line of its key; start it on the next line")
            value = self.block_mapping(column, depth)
        elif ch in "|>":
            value = self.block_scalar(indent)
        elif self.implicit_key_ahead():
            if not inline:
                raise self.error(f"a mapping cannot start on the line of its key (got {_preview(self.rest_of_line())});"
                                 " quote the value, or start the mapping on the next line")
            value = self.block_mapping(column, depth)
        elif ch == "*":
            value = self.alias()
            self.end_of_line("an alias")
            return value if anchor is None and tag is None else self.finish(value, anchor, tag, start, nodes_before)
        elif ch in "[{":
            value = self.flow_collection(depth)
            self.end_of_line("a flow collection")
        elif ch in "\"'":
            value = self.quoted(ch, indent)
            self.end_of_line("a quoted string")
        else:
            plain_start = self.pos
            value = self.plain(indent, flow=False)
            if tag is not None:
                return self.finish(value, anchor, tag, plain_start, nodes_before)
        self.count()
        return self.finish(value, anchor, tag, start, nodes_before)

    def implicit_key_ahead(self) -> bool:
        """Whether the line from ``pos`` holds ``key:`` followed by a blank or its end."""
        ch = self.peek()
        if ch in "\"'":
            saved = self.pos
            try:
                self.quoted(ch, -1, single_line=True)
            except YamlError:
                return False
            finally:
                end, self.pos = self.pos, saved
            after = _BLANKS.match(self.text, end).end()  # type: ignore[union-attr]
            return self.text.startswith(":", after) and self.text[after + 1 : after + 2] in ("", " ", "\t", "\n")
        if ch in "[{#&*!|>%@`,]}" or (ch in "-?:" and self.at_blank(1)):
            return False
        match = _KEY_END.search(self.rest_of_line())
        return match is not None and match.group().startswith(":")

    def key(self) -> Any:
        """A block mapping's key (``pos`` at its start, :meth:`implicit_key_ahead` true), through the ':'."""
        if self.peek() in "\"'":
            key: Any = self.quoted(self.peek(), -1, single_line=True)
            self.skip_blanks()
        else:
            line = self.rest_of_line()
            match = _KEY_END.search(line)
            assert match is not None
            key = self.resolve(line[: match.start()].rstrip(" \t"))
            self.pos += match.start()
        self.pos += 1  # the ':'
        return key

    def block_mapping(self, indent: int, depth: int) -> dict[Any, Any]:
        self.check_depth(depth + 1)
        result: dict[Any, Any] = {}
        explicit: set[Any] = set()
        while True:
            key_pos = self.pos
            if self.peek() == "-" and self.at_blank(1):
                raise self.error("a sequence item ('- ') where a mapping key was expected; indent the item "
                                 "under its key or add the key")
            if self.peek() == "?" and self.at_blank(1):  # an explicit key: "? key" then ": value"
                self.pos += 1
                plain_merge = False
                key = self.block_node(indent, depth + 1, inline_collections=True, sequence_at_indent=False)
                if self.skip_to_content() == indent and self.peek() == ":" and self.at_blank(1):
                    self.pos += 1
                    value = self.block_node(indent, depth + 1, inline_collections=True, sequence_at_indent=True)
                else:
                    value = None
            else:
                if not self.implicit_key_ahead():
                    raise self.error(f"expected 'key: value' (got {_preview(self.rest_of_line())})")
                plain_merge = self.peek() not in "\"'"
                key = self.key()
                value = self.block_node(indent, depth + 1, inline_collections=False, sequence_at_indent=True)
            self.store(result, explicit, key, value, plain_merge, key_pos)
            column = self.skip_to_content()
            if column == indent:
                continue
            if column > indent:
                raise self.error(f"unexpected indentation {_preview(self.rest_of_line())} ({_spaces(column)} where "
                                 f"{indent} or fewer fit; a value cannot continue on a line that is deeper than "
                                 "its key unless it is quoted)")
            return result

    def store(self, mapping: dict[Any, Any], explicit: set[Any], key: Any, value: Any, plain_merge: bool,
              key_pos: int) -> None:
        """One ``key: value`` into ``mapping``; ``<<`` merges (keys written out win over merged ones)."""
        if key == "<<" and plain_merge:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                raise self.error("a merge key ('<<') takes a mapping or a list of mappings", key_pos)
            for source in reversed(sources):
                for k, v in source.items():
                    if k not in explicit:
                        mapping[k] = v
            return
        try:
            hash(key)
        except TypeError:
            raise self.error("a mapping or sequence as a key is not supported", key_pos) from None
        explicit.add(key)  # a repeated key: the last value wins, as in kubectl (go-yaml) and PyYAML
        mapping[key] = value

    def block_sequence(self, indent: int, depth: int) -> list[Any]:
        self.check_depth(depth + 1)
        items: list[Any] = []
        while True:
            self.pos += 1  # the '-'
            items.append(self.block_node(indent, depth + 1, inline_collections=True, sequence_at_indent=False))
            column = self.skip_to_content()
            if column == indent and self.peek() == "-" and self.at_blank(1):
                continue
            if column > indent:
                raise self.error(f"unexpected indentation {_preview(self.rest_of_line())} ({_spaces(column)} where "
                                 f"{indent} or fewer fit)")
            return items

    def block_scalar(self, indent: int) -> str:
        """``|`` (literal) or ``>`` (folded) in a collection at column ``indent``, read as
        PyYAML's scanner reads them (``scan_block_scalar``)."""
        folded = self.peek() == ">"
        self.pos += 1
        header = _HEADER.match(self.text, self.pos)
        if header is None or (header.group(1) and header.group(3)):
            raise self.error(f"bad block scalar header {_preview(self.rest_of_line())}; expected e.g. '|', '|-', "
                             "'>+' or '|2'")
        digit = header.group(1) or header.group(3)
        chomp = header.group(2)
        self.pos = header.end()  # at the header's line break, or the end
        lines = self.text[self.pos + 1 :].split("\n") if self.pos < len(self.text) else []
        terminated = [True] * len(lines)
        if lines:
            terminated[-1] = False
            if lines[-1] == "":
                lines.pop()
                terminated.pop()
        min_indent = max(indent + 1, 1)
        if digit:
            width = min_indent + int(digit) - 1
        else:
            width = min_indent
            for line in lines:
                content = line.lstrip(" ")
                width = max(width, len(line) - len(content))
                if content:
                    break

        def is_break(line: str) -> bool:
            return len(line) <= width and not line.strip(" ")

        def is_content(line: str) -> bool:
            return len(line) > width and not line[:width].strip(" ")

        i = 0
        breaks: list[str] = []
        while i < len(lines) and is_break(lines[i]):
            breaks.append("\n")
            i += 1
        chunks: list[str] = []
        line_break = ""
        while i < len(lines) and is_content(lines[i]):
            chunks.extend(breaks)
            body = lines[i][width:]
            leading_non_space = body[0] not in " \t"
            chunks.append(body)
            line_break = "\n" if terminated[i] else ""
            i += 1
            breaks = []
            while i < len(lines) and is_break(lines[i]):
                breaks.append("\n")
                i += 1
            if i < len(lines) and is_content(lines[i]):
                if folded and line_break and leading_non_space and lines[i][width] not in " \t":
                    if not breaks:
                        chunks.append(" ")
                else:
                    chunks.append(line_break)
            else:
                break
        if chomp != "-":
            chunks.append(line_break)
        if chomp == "+":
            chunks.extend(breaks)
        for line in lines[:i]:  # stay on the last line's break, as every other node does
            self.pos = min(self.pos + 1 + len(line), len(self.text))
        return "".join(chunks)

    # ------------------------------------------------------------------ scalars

    def plain(self, indent: int, *, flow: bool) -> Any:
        """A plain scalar, over several lines when they are indented deeper than ``indent``."""
        start = self.pos
        ch = self.peek()
        if ch in "@`%|>#,[]{}" or (ch in "-?:" and self.at_blank(1)):
            raise self.error(f"a plain value cannot start with {ch!r} (got {_preview(self.rest_of_line())}); quote it")
        end_re = _PLAIN_END_FLOW if flow else _PLAIN_END_BLOCK
        parts: list[str] = []
        while True:
            line = self.rest_of_line()
            match = end_re.search(line)
            stop = match.start() if match else len(line)
            parts.append(line[:stop])
            self.pos += stop
            stopper = match.group().lstrip(" \t") if match else ""
            if stopper[:1] == ":" and not flow:
                raise self.error(f"a ': ' inside a plain value (got {_preview(line.strip())}); quote the value, "
                                 "or start the mapping on the next line")
            if stopper:
                break  # a comment, or in a flow collection an indicator: the scalar ends here
            found = self.continuation(indent, flow)
            if found is None:
                break
            self.pos, empty = found
            parts.append("\n" * empty if empty else " ")
        value = "".join(parts)
        if not value:
            raise self.error("expected a value", start)
        return self.resolve(value)

    def continuation(self, indent: int, flow: bool) -> tuple[int, int] | None:
        """Where a plain scalar goes on after its line: (position, empty lines between), or None."""
        text = self.text
        probe = text.find("\n", self.pos)
        empty = 0
        while probe >= 0:
            line_start = probe + 1
            spaces_end = _SPACES.match(text, line_start).end()  # type: ignore[union-attr]
            content = _BLANKS.match(text, spaces_end).end()  # type: ignore[union-attr]
            ch = text[content : content + 1]
            if ch == "":
                return None
            if ch == "\n":
                empty += 1
                probe = content
                continue
            if ch == "#" or (not flow and spaces_end - line_start <= indent) \
                    or (spaces_end == line_start and _MARKER.match(text, line_start)):
                return None
            if flow and (ch in ",[]{}" or (ch == ":" and text[content + 1 : content + 2] in _FLOW_BLANK)):
                return None
            return content, empty
        return None

    def resolve(self, text: str) -> Any:
        """A plain scalar's type, as PyYAML's safe_load gives it (see the module docstring);
        an integer longer than :data:`plugin.model.limits.INT_MAX_DIGITS` is an error."""
        if text in _NULLS:
            return None
        first = text[0]
        if first.isalpha() or first in "~":
            return _BOOLS.get(text, text)
        if first in "0123456789+-.":
            if _INT.fullmatch(text):
                digits = text.replace("_", "")
                sign = -1 if digits[0] == "-" else 1
                digits = digits.lstrip("+-")
                if digits in ("0b", "0x"):
                    return text  # only underscores after the prefix: no number (PyYAML fails here)
                problem = limits.int_problem(digits)
                if problem:
                    raise self.error(f"{problem}; quote it if it is text")
                if digits.startswith("0b"):
                    return sign * int(digits[2:], 2)
                if digits.startswith("0x"):
                    return sign * int(digits[2:], 16)
                if len(digits) > 1 and digits[0] == "0":
                    return sign * int(digits, 8)
                return sign * int(digits)
            if _FLOAT.fullmatch(text):
                return float(text.replace("_", ""))
            if text in _INF_NAN:
                return float(_INF_NAN[text])
        return text

    def quoted(self, quote: str, indent: int, *, single_line: bool = False) -> str:
        """A single- or double-quoted scalar at ``pos``; line breaks fold as YAML folds them."""
        start = self.pos
        text = self.text
        self.pos += 1
        out: list[str] = []
        run = _DOUBLE_RUN if quote == '"' else _SINGLE_RUN
        while True:
            match = run.match(text, self.pos)
            if match:
                self.pos = match.end()
                # blanks before a line break are dropped (escaped ones are kept: they are not in a run)
                out.append(match.group().rstrip(" \t") if self.peek() == "\n" else match.group())
            ch = self.peek()
            if ch == quote:
                if quote == "'" and self.peek(1) == "'":
                    out.append("'")
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.escape(out)
                continue
            kind = "single" if quote == "'" else "double"
            if ch == "\n" and not single_line:
                self.fold_quoted(out, start, kind)
                continue
            raise self.error(f"unterminated {kind}-quoted string (the line ends before its closing {quote})", start)

    def escape(self, out: list[str]) -> None:
        esc = self.peek(1)
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            self.pos += 2
        elif esc in _HEX_WIDTH:
            width = _HEX_WIDTH[esc]
            digits = self.text[self.pos + 2 : self.pos + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.error(f"bad escape {_preview(chr(92) + esc + digits)} in a double-quoted string; "
                                 f"\\{esc} takes {width} hexadecimal digits")
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self.error(f"bad escape {_preview(chr(92) + esc + digits)}: beyond the last Unicode character")
            out.append(chr(code))
            self.pos += 2 + width
        elif esc == "\n":  # an escaped line break: joined without a space; empty lines still count
            self.pos += 2
            self.skip_blanks()
            while self.peek() == "\n":
                out.append("\n")
                self.pos += 1
                self.skip_blanks()
        else:
            raise self.error(f"unknown escape {_preview(chr(92) + esc)} in a double-quoted string; "
                             "write a backslash as \\\\")

    def fold_quoted(self, out: list[str], start: int, kind: str) -> None:
        """A line break inside quotes: one space, or as many line breaks as there are empty lines."""
        empty = 0
        while self.peek() == "\n":
            self.pos += 1
            if _MARKER.match(self.text, self.pos):
                raise self.error("a document marker inside a quoted string; close the quote first", start)
            self.skip_blanks()
            if self.peek() == "\n":
                empty += 1
        if self.peek() == "":
            raise self.error(f"unterminated {kind}-quoted string (the file ends inside it)", start)
        out.append("\n" * empty if empty else " ")

    # ------------------------------------------------------------------ flow context

    def skip_flow(self) -> None:
        """Blanks, line breaks and comments between the parts of a flow collection."""
        text = self.text
        while True:
            self.skip_blanks()
            ch = self.peek()
            if ch == "\n":
                self.pos += 1
                if _MARKER.match(text, self.pos):
                    raise self.error("a document marker inside a flow collection; close it first")
                continue
            if ch == "#":
                end = text.find("\n", self.pos)
                self.pos = end if end >= 0 else len(text)
                continue
            return

    def flow_collection(self, depth: int) -> Any:
        opening = self.peek()
        start = self.pos
        closing = "]" if opening == "[" else "}"
        self.check_depth(depth + 1)
        self.pos += 1
        seq: list[Any] = []
        mapping: dict[Any, Any] = {}
        explicit: set[Any] = set()
        while True:
            self.skip_flow()
            ch = self.peek()
            if ch == closing:
                self.pos += 1
                return seq if opening == "[" else mapping
            if ch == "":
                raise self.error(f"unclosed {_preview(opening)} (the file ends before its {_preview(closing)})", start)
            if ch in "]}":
                raise self.error(f"unexpected {_preview(ch)} inside {_preview(opening)}")
            if ch == ",":
                raise self.error("an empty entry (',' with nothing before it) in a flow collection")
            explicit_key = ch == "?"  # in a flow collection '?' always marks a key (YAML 1.1, libyaml)
            if explicit_key:
                self.pos += 1
                self.skip_flow()
                ch = self.peek()
            key_pos = self.pos
            plain_merge = ch not in "\"'"
            if ch == ":" and self.at_blank(1):
                key: Any = None
            else:
                key = self.flow_node(depth + 1)
            adjacent = self.pos  # JSON style: ':' right after a quoted key or a collection
            self.skip_flow()
            if self.peek() == ":" and (self.at_blank(1) or self.peek(1) in ",[]{}"
                                       or (self.pos == adjacent and not plain_merge)
                                       or self.text[key_pos] in "[{"):
                self.pos += 1
                self.skip_flow()
                value = None if self.peek() in (",", closing) else self.flow_node(depth + 1)
                pair = True
            else:
                value = None
                pair = explicit_key
            if opening == "{":
                self.store(mapping, explicit, key, value, plain_merge, key_pos)
            elif pair:
                single: dict[Any, Any] = {}
                self.store(single, set(), key, value, plain_merge, key_pos)
                seq.append(single)
            else:
                seq.append(key)
            self.skip_flow()
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch != closing:
                expected = "',' or ']'" if opening == "[" else "',' or '}'"
                shown = _preview(self.rest_of_line()) if ch else "the end of the file"
                kind = "sequence" if opening == "[" else "mapping"
                raise self.error(f"expected {expected} in the flow {kind} opened on line {self.line(start)} "
                                 f"(got {shown})")

    def flow_node(self, depth: int) -> Any:
        start = self.pos
        nodes_before = self.nodes
        anchor, tag = self.properties()
        if anchor is not None or tag is not None:
            self.skip_flow()
        ch = self.peek()
        if ch in ",]}" or (ch == ":" and self.at_blank(1)):
            value: Any = None
        elif ch in "[{":
            value = self.flow_collection(depth)
        elif ch in "\"'":
            value = self.quoted(ch, -1)
        elif ch == "*":
            value = self.alias()
            return value if anchor is None and tag is None else self.finish(value, anchor, tag, start, nodes_before)
        else:
            plain_start = self.pos
            value = self.plain(-1, flow=True)
            self.count()
            return self.finish(value, anchor, tag, plain_start if tag else start, nodes_before)
        self.count()
        return self.finish(value, anchor, tag, start, nodes_before)
