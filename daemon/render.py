"""The sandboxed Jinja environment staff templates run in.

Staff edit the files under ``templates/``; this module turns them into the subject, text and HTML of a touch.
Template code is untrusted: it runs in Jinja's ``ImmutableSandboxedEnvironment`` (no Python internals, no
mutation of the data it is given, no file system beyond ``{% include %}`` of other files in the templates
folder) with ``StrictUndefined`` (a typo fails instead of printing nothing), and with limits the sandbox does not
have on its own: output size, rendering time, and every step that can build a huge value at once (``'a' * n``,
``x ** n``, ``~`` concatenation, ``str.format`` widths, ``center``/``join``/``replace``/``indent``/… filters and
string methods). Whatever goes wrong, the caller gets a :class:`TemplateError` whose problems name the template
file and line, never a raw traceback.

**Resolution** (the one rule, also in ``templates/README.md``): for kind ``K``, customer language ``L`` and inbox
``I``, the first of these folders that holds any of ``K.subject.txt``, ``K.txt``, ``K.html`` provides the touch:
``I/L/``, ``I/`` (only when ``L`` is the default language or a regional variant of it), ``L/``, the base language
of ``L`` (``pt`` for ``pt-BR``), the default language. That folder must have ``K.subject.txt`` and ``K.txt``;
``K.html`` is optional (without it the mail is text only). Parts never mix folders, so a translated or
per-inbox text is never paired with another folder's HTML. Files whose name starts with ``_`` are partials.

**Dates**: every ``datetime`` in the context (nested too) reaches templates as a :class:`FormattedDate` that reads
naturally in the template's language.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import re
import string
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import css_inline
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, tokenize_pattern, untokenize_pattern
from jinja2 import (
    BaseLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
    pass_eval_context,
    select_autoescape,
)
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.loaders import split_template_path
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, escape

from daemon.domain.model import TouchKind
from daemon.template_folder import MAX_TEMPLATE_CHARS, FolderSnapshot, folder_stamp, read_folder

SUBJECT_MAX_CHARS = 200
MAX_INT_BITS = 16_384  # integers a template may build with * and ** (about 4,900 digits)
WORK_FACTOR = 20  # a render may build at most WORK_FACTOR * max_output_chars characters of values in all

# A bare "en" formats dates as CLDR's en_GB does ("Friday, 27 November", "14:00"): what most English-speaking
# customers outside North America expect. A customer tagged en-US gets "Friday, November 27" and "2:00 PM".
_BARE_LANGUAGE_DATES = {"en": "en_GB"}
_PARTS = (("subject", ".subject.txt"), ("text", ".txt"), ("html", ".html"))
_KINDS = frozenset(kind.value for kind in TouchKind)
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{4})?(?:[-_](?:[A-Za-z]{2}|\d{3}))?")
_INBOX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PRINTF_RE = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
# Filters that turn None into the text "None": the result would end up in a mail.
_TEXT_FILTERS = frozenset(
    [
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "indent",
        "lower",
        "paragraphs",
        "quote",
        "replace",
        "sentence",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlize",
        "wordwrap",
    ]
)
# translate: a table can multiply a string's length; to_bytes(n): n bytes at once; encode: no bytes in templates
# (their methods would need the same guards as str's).
_UNSAFE_METHODS = frozenset({"translate", "to_bytes", "encode"})
_LOOP_GUARD = "_closeloop_loop_guard"
_CONCAT = "_closeloop_concat"


@dataclass(frozen=True, kw_only=True)
class RenderedTouch:
    """One rendered touch, ready for ``mail.compose``."""

    subject: str
    text: str
    html: str | None
    template: str
    version: str


@dataclass(frozen=True, kw_only=True)
class TemplateProblem:
    """Something wrong with a template, at ``path`` (relative to the templates folder) and ``line``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}" if where else self.message


class TemplateError(Exception):
    """A touch could not be rendered; ``problems`` says where and why, one per line in ``str()``."""

    def __init__(self, problems: Iterable[TemplateProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def path(self) -> str:
        return self.problems[0].path if self.problems else ""

    @property
    def line(self) -> int | None:
        return self.problems[0].line if self.problems else None


class RenderLimitExceeded(TemplateRuntimeError):
    """A template hit the output, time or size limit; raised inside template code so the line is known."""


class FormattedDate:
    """A date as templates see it, in the template's language.

    ``str()`` is ``.day`` ("Friday, 27 November"); ``.date`` is "27 November 2026", ``.weekday`` "Friday",
    ``.time`` "14:00" (empty for a plain date), ``.iso`` "2026-11-27T14:00:00+01:00". The value is shown in the
    timezone it carries: the caller converts it to the customer's timezone first.
    """

    def __init__(self, value: _dt.date, locale: Locale) -> None:
        self._value = value
        self._locale = locale

    @cached_property
    def day(self) -> str:
        return format_date(self._value, _day_pattern(str(self._locale)), locale=self._locale)

    @cached_property
    def date(self) -> str:
        return format_date(self._value, "long", locale=self._locale)

    @cached_property
    def weekday(self) -> str:
        return format_date(self._value, "EEEE", locale=self._locale)

    @cached_property
    def time(self) -> str:
        if not isinstance(self._value, _dt.datetime):
            return ""
        return format_time(self._value, "short", locale=self._locale)

    @property
    def iso(self) -> str:
        return self._value.isoformat()

    def __str__(self) -> str:
        return self.day

    def __repr__(self) -> str:
        return f"FormattedDate({self._value.isoformat()!r}, {str(self._locale)!r})"


@lru_cache(maxsize=64)
def _day_pattern(locale: str) -> str:
    """The locale's full date pattern without the year: 'EEEE, d MMMM y' -> 'EEEE, d MMMM'."""
    tokens = tokenize_pattern(Locale.parse(locale).date_formats["full"].pattern)
    years = [i for i, (kind, value) in enumerate(tokens) if kind == "field" and value[0] in "yYu"]
    if not years:
        return untokenize_pattern(tokens)
    start = end = years[0]
    is_first = not any(kind == "field" for kind, _ in tokens[:start])
    is_last = not any(kind == "field" for kind, _ in tokens[end + 1 :])
    if not is_first and is_last:
        while start > 0 and tokens[start - 1][0] == "chars":
            start -= 1
    while end + 1 < len(tokens) and tokens[end + 1][0] == "chars":
        end += 1
    return untokenize_pattern(tokens[:start] + tokens[end + 1 :])


@lru_cache(maxsize=512)
def language_tag(value: str) -> str | None:
    """The canonical folder name for a language tag ("pt_br" -> "pt-BR"), or None when it is not one."""
    if not _LANGUAGE_RE.fullmatch(value):
        return None
    try:
        locale = Locale.parse(value.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    if locale.language != value[:3].split("-")[0].split("_")[0].lower():
        return None  # Babel expanded something like "und" into another language
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


def _base_language(tag: str) -> str:
    return tag.split("-")[0]


@lru_cache(maxsize=128)
def _date_locale(tag: str) -> Locale:
    return Locale.parse(_BARE_LANGUAGE_DATES.get(tag, tag.replace("-", "_")))


# ---------------------------------------------------------------------------------------------------------------
# Limits


class _Budget:
    """The time and work one render may spend; checked from the sandbox's hooks."""

    __slots__ = ("deadline", "time_limit", "work", "work_limit")

    def __init__(self, time_limit: float, work_limit: int) -> None:
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.work = 0
        self.work_limit = work_limit

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"time limit: rendering took longer than {self.time_limit:g} s")

    def charge(self, size: int) -> None:
        self.work += size
        if self.work > self.work_limit:
            raise RenderLimitExceeded(f"work limit: the template built more than {self.work_limit} characters")


_BUDGET: ContextVar[_Budget | None] = ContextVar("closeloop_render_budget", default=None)
_USED: ContextVar[set[str] | None] = ContextVar("closeloop_templates_used", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _weight(value: object, cap: int) -> int:
    """Roughly how many characters ``value`` stands for (strings, nested containers), counting up to ``cap``."""
    if type(value) is str:
        return len(value)
    total, stack = 0, [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
    return total


def _printed_none() -> TemplateRuntimeError:
    return TemplateRuntimeError(
        "printed None: this optional value is missing here; wrap it in {% if … %} or write (x or '…')"
    )


def _refuse_none(values: Iterable[Any]) -> None:
    """``'by ' ~ x``, ``'%s' % x`` and ``'{}'.format(x)`` would write "None" into a mail when x is missing."""
    if any(value is None for value in values):
        raise _printed_none()


def _too_big(what: str, size: int | None, limit: int) -> RenderLimitExceeded:
    amount = f"{size} characters, " if size is not None and size < 10 * limit else ""
    return RenderLimitExceeded(f"output limit: {what} would be {amount}over the limit of {limit} characters")


def _check_printf(fmt: str, limit: int) -> None:
    for width, precision in _PRINTF_RE.findall(fmt):
        if "*" in (width, precision):
            raise SecurityError("'*' widths in % formatting are not allowed in templates")
        for number in (width, precision):
            if number and int(number) > limit:
                raise _too_big("a % format width", int(number), limit)


def _check_format_string(fmt: str, limit: int) -> None:
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec and "{" in spec:
            raise SecurityError("nested format fields are not allowed in templates")
        for number in re.findall(r"\d+", spec or ""):
            if int(number) > limit:
                raise _too_big("a format width", int(number), limit)


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _materialize(items: Iterable[Any]) -> list[Any]:
    result: list[Any] = []
    for item in items:
        if len(result) % 1024 == 0:
            _tick()
            if len(result) > MAX_RANGE:
                raise RenderLimitExceeded(f"output limit: more than {MAX_RANGE} items")
        result.append(item)
    return result


def _estimate_join(separator: str, items: list[Any], limit: int) -> int:
    return sum(_weight(item, limit) for item in items) + len(separator) * len(items)


def _estimate_replace(text: str, old: object, new: object, count: object) -> int:
    if not (isinstance(old, str) and isinstance(new, str)):
        return len(text)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _estimate_str_call(owner: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """The size a string method call would produce, for the methods that can build a lot at once."""
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(owner), _int(_argument(args, kwargs, 0, "width", 0)))
    if name == "expandtabs":
        return len(owner) + owner.count("\t") * _int(_argument(args, kwargs, 0, "tabsize", 8))
    if name == "replace":
        return _estimate_replace(
            owner,
            _argument(args, kwargs, 0, "old", None),
            _argument(args, kwargs, 1, "new", None),
            _argument(args, kwargs, 2, "count", -1),
        )
    return len(owner)


class _FilterGuard:
    """Prechecks for the filters that can build a huge value in one step (jinja2.filters signatures)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Raise when the filter would build too much; may return a materialized ``value`` to use instead."""
        if value is None and name in _TEXT_FILTERS:
            raise _printed_none()
        size = 0
        if name == "center":
            size = max(len(str(value)), _int(_argument(args, kwargs, 0, "width", 80)))
        elif name == "indent":
            width = _argument(args, kwargs, 0, "width", 4)
            per_line = len(width) if isinstance(width, str) else _int(width)
            size = len(str(value)) + (str(value).count("\n") + 1) * per_line
        elif name == "format":
            _check_printf(str(value), self.limit)
            _refuse_none([*args, *kwargs.values()])
            size = len(str(value)) + _weight(args, self.limit) + _weight(dict(kwargs), self.limit)
        elif name == "join":
            value = _materialize(value)
            size = _estimate_join(str(_argument(args, kwargs, 0, "d", "")), value, self.limit)
        elif name == "replace":
            size = _estimate_replace(
                str(value),
                _argument(args, kwargs, 0, "old", None),
                _argument(args, kwargs, 1, "new", None),
                _argument(args, kwargs, 2, "count", None),
            )
        elif name == "wordwrap":
            text = str(value)
            wrap = _argument(args, kwargs, 2, "wrapstring", None) or "\n"
            lines = (
                len(text) // max(_int(_argument(args, kwargs, 0, "width", 79)), 1) + text.count(" ") + text.count("\n")
            )
            size = len(text) + (lines + 1) * len(str(wrap))
        elif name == "urlize":
            extra = sum(len(str(_argument(args, kwargs, i, key, "") or "")) for i, key in ((2, "target"), (3, "rel")))
            size = 3 * len(str(value)) + (len(str(value)) // 4 + 1) * (extra + 40)
        elif name in ("batch", "slice"):
            count = args[0] if args else kwargs.get("linecount", kwargs.get("slices", 0))
            if isinstance(count, int) and count > MAX_RANGE:
                raise RenderLimitExceeded(f"output limit: {name} of {count} is more than {MAX_RANGE}")
        elif name == "sum":
            start = _argument(args, kwargs, 1, "start", 0)
            if not isinstance(start, (int, float)):
                raise SecurityError("sum only adds numbers in templates")
        if size > self.limit:
            raise _too_big(f"the result of |{name}", size, self.limit)
        return value


# ---------------------------------------------------------------------------------------------------------------
# The environment


class _Guards(NodeTransformer):
    """Rewrites a template's tree so loops check the time limit and ``~`` checks the size of what it builds."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_GUARD, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, _CONCAT, [], [], None, None, lineno=node.lineno)


class _Loader(BaseLoader):
    """Serves one :class:`FolderSnapshot`: names are relative to the templates folder, never outside it."""

    def __init__(self, snapshot: FolderSnapshot) -> None:
        self.snapshot = snapshot

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        name = "/".join(split_template_path(template))  # refuses ".." like Jinja's FileSystemLoader
        refusal = self.snapshot.refused.get(name)
        if refusal is not None:
            if refusal.security:
                raise SecurityError(f"{name} {refusal.message}")
            raise _UnusableFile(name, refusal.line, refusal.message)
        source = self.snapshot.sources.get(name)
        if source is None:
            raise TemplateNotFound(template)
        return source, self.snapshot.root + name.replace("/", os.sep), _unchanging


def _unchanging() -> bool:
    return True  # a snapshot never changes; a new version of the folder gets a new environment


class _UnusableFile(TemplateRuntimeError):
    """A file of the folder that cannot be used (too large, not UTF-8, unreadable); reported at that file."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}: {reason}")


class _Sandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment plus size and time limits on everything a template can compute."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, loader: _Loader, max_chars: int) -> None:
        super().__init__(
            loader=loader,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            auto_reload=False,  # a version of the folder never changes; an edit is a new version
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=self._finalize,
        )
        self.max_chars = max_chars
        self.filter_guard = _FilterGuard(max_chars)
        del self.globals["lipsum"]  # a generator of arbitrary size that no mail needs
        self.filters.update(paragraphs=_paragraphs, quote=_quote, sentence=_sentence)
        self.filters = {name: self._guard_filter(name, func) for name, func in self.filters.items()}
        self.filters[_LOOP_GUARD] = _guard_loop
        self.filters[_CONCAT] = pass_eval_context(functools.partial(_Sandbox._concat_parts, self))

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        tree = _Guards().visit(source)
        tree.set_environment(self)
        return super()._generate(tree, name, filename, defer_init)

    def _load_template(self, name: str, globals: Any) -> JinjaTemplate:
        template = super()._load_template(name, globals)
        used = _USED.get()
        if used is not None:
            used.add(name)
        return template

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, (str, int)) and attr in _UNSAFE_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        args = __self._check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        __self.account(result, "the result of this call")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            self._check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, self.max_chars)
            _refuse_none(right if isinstance(right, tuple) else (right,))
            self.account(right, "the values formatted here", charge=False)
        result = self.binop_table[operator](left, right)
        self.account(result, f"the result of {operator!r}")
        return result

    def concat(self, pieces: Iterable[str]) -> str:
        """Joins captured output (macros, {% set %} blocks, {% filter %} blocks) after checking its size."""
        pieces = pieces if isinstance(pieces, list) else list(pieces)
        size = sum(map(len, pieces))
        if size > self.max_chars:
            raise _too_big("the text captured here", size, self.max_chars)
        return "".join(pieces)

    def account(self, value: Any, what: str, *, charge: bool = True) -> None:
        """Refuse a value larger than the output limit, and charge what was built to the render's budget."""
        size = _weight(value, self.max_chars)
        if size > self.max_chars:
            raise _too_big(what, None, self.max_chars)
        budget = _BUDGET.get()
        if charge and budget is not None:
            budget.charge(size)

    def _finalize(self, value: Any) -> Any:
        if value is None:
            raise _printed_none()
        if type(value) is not str:
            self.account(value, "the value printed here", charge=False)
        return value

    def _concat_parts(self, eval_ctx: EvalContext, parts: list[Any]) -> str:
        """``a ~ b``: like Jinja's own concatenation, after checking the size of the result."""
        _refuse_none(parts)
        strings = [part if isinstance(part, str) else self._stringify(part) for part in parts]
        size = sum(map(len, strings))
        if size > self.max_chars:
            raise _too_big("the result of '~'", size, self.max_chars)
        budget = _BUDGET.get()
        if budget is not None:
            budget.charge(size)
        if eval_ctx.autoescape and any(isinstance(part, Markup) for part in strings):
            return Markup("").join(strings)
        return "".join(strings)

    def _stringify(self, value: Any) -> str:
        self.account(value, "a value joined with '~'", charge=False)
        return str(value)

    def _check_call(self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        target = getattr(func, "__wrapped__", func)  # the sandbox wraps str.format in a plain function
        owner = getattr(target, "__self__", None)
        if not isinstance(owner, str):
            return args
        name = getattr(target, "__name__", "")
        if name in ("format", "format_map"):
            _check_format_string(owner, self.max_chars)
            mapping = args[0] if name == "format_map" and args and isinstance(args[0], Mapping) else {}
            _refuse_none([*args, *kwargs.values(), *mapping.values()])
            self.account((args, dict(kwargs)), "the values formatted here", charge=False)
            return args
        if name == "join" and args:
            args = (_materialize(args[0]), *args[1:])
            size = _estimate_join(owner, args[0], self.max_chars)
        else:
            size = _estimate_str_call(owner, name, args, kwargs)
        if size > self.max_chars:
            raise _too_big(f"the result of .{name}()", size, self.max_chars)
        return args

    def _check_repeat(self, left: Any, right: Any) -> None:
        if isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise RenderLimitExceeded(f"size limit: a product larger than {MAX_INT_BITS} bits")
            return
        for sequence, count in ((left, right), (right, left)):
            if isinstance(count, int) and isinstance(sequence, (str, bytes, list, tuple)):
                size = _weight(sequence, self.max_chars) * max(count, 0)
                if size > self.max_chars:
                    raise _too_big("the result of '*'", size, self.max_chars)

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        guard, account = self.filter_guard, self.account

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _tick()
            if len(args) > first:
                value = guard.check(name, args[first], args[first + 1 :], kwargs)
                args = (*args[:first], value, *args[first + 1 :])
            result = func(*args, **kwargs)
            account(result, f"the result of |{name}")
            return result

        return guarded


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1):
        return
    if abs(base).bit_length() * exponent > MAX_INT_BITS:
        raise RenderLimitExceeded(f"size limit: a power larger than {MAX_INT_BITS} bits")


def _guard_loop(iterable: Any) -> Any:
    """Every ``{% for %}`` iterates through this, so a loop that prints nothing still meets the time limit."""
    budget = _BUDGET.get()
    if budget is None:  # constant folding at compile time
        return iterable
    return _guarded_items(iterable, budget)


def _guarded_items(iterable: Iterable[Any], budget: _Budget) -> Iterator[Any]:
    for item in iterable:
        budget.tick()
        yield item


@pass_eval_context
def _paragraphs(eval_ctx: EvalContext, value: Any) -> str:
    """Multi-paragraph text for HTML: blank lines become paragraphs, newlines ``<br>``; escaped. Text unchanged."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not eval_ctx.autoescape:
        return text
    blocks = [block.strip("\n") for block in re.split(r"\n[ \t]*\n", text) if block.strip()]
    lines = (Markup("<br>\n").join(escape(line) for line in block.split("\n")) for block in blocks)
    return Markup("\n").join(Markup("<p>{}</p>").format(block) for block in lines)


def _sentence(value: Any) -> str:
    """A note as a sentence: first letter upper case (the rest as it is), a full stop unless it has one."""
    text = str(value).strip()
    end = "" if not text or text[-1] in ".!?…:" else "."
    return text[:1].upper() + text[1:] + end


def _quote(value: Any) -> str:
    """Quote text the way mail does: every line starts with "> "."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    return "\n".join(f"> {line}".rstrip() for line in lines)


# ---------------------------------------------------------------------------------------------------------------
# The renderer


@dataclass(frozen=True)
class _TouchFiles:
    """The files of one kind in one folder; ``language`` is the folder's language (for dates)."""

    folder: str
    kind: str
    language: str
    subject: str | None
    text: str | None
    html: str | None

    def missing(self) -> list[TemplateProblem]:
        have = next(name for name in (self.subject, self.text, self.html) if name)
        return [
            TemplateProblem(
                path=f"{self.folder}/{self.kind}{suffix}",
                line=None,
                message=f"missing: {have} is here, so this folder must also have this file",
            )
            for part, suffix in _PARTS[:2]
            if getattr(self, part) is None
        ]


@dataclass(frozen=True, kw_only=True)
class Refresh:
    """What :meth:`Renderer.refresh` found.

    ``problems`` are those of the files on disk; while there are any, renders use the last version that passed
    the check (``fallback``) or, when no version has passed since the renderer started, the files on disk as they
    are: a touch whose templates work is rendered, one whose templates fail raises :class:`TemplateError`.
    """

    changed: bool  # the files differ from the previous look (the first look counts as a change)
    generation: int  # how many changes the renderer has seen, whoever made it look: compare with an earlier one
    problems: tuple[TemplateProblem, ...]
    version: str  # of the whole folder as renders use it now
    fallback: bool

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, kw_only=True)
class _Options:
    default_language: str
    max_output_chars: int
    time_limit: float


class Renderer:
    """Renders touches from the templates folder ``directory``; see the module docstring for the rules.

    One instance serves the whole daemon and is thread-safe. It renders from the last version of the folder that
    passed :meth:`check` with the sample contexts: an edit is looked for at most every ``reload_interval``
    seconds (and at every :meth:`refresh`), checked, and used from the next render on when it passes. A broken
    edit leaves the last good version in use and shows in :meth:`problems`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_output_chars: int = 200_000,
        time_limit: float = 2.0,
        default_language: str = "en",
        reload_interval: float = 1.0,
    ) -> None:
        default = language_tag(default_language)
        if default is None:
            raise ValueError(f"default_language: {default_language!r} is not a language tag such as 'en'")
        self.directory = Path(directory).absolute()
        self.default_language = default
        self.max_output_chars = max_output_chars
        self.time_limit = time_limit
        self.reload_interval = reload_interval
        self._options = _Options(default_language=default, max_output_chars=max_output_chars, time_limit=time_limit)
        # css_inline (Servo's html5ever + cssparser, in Rust) moves the layout's <style> rules into style=""
        # attributes, which Gmail and Outlook need; it is fast, well kept, and never fetches remote stylesheets
        # with load_remote_stylesheets=False. @media rules stay in a <style> block for clients that read it.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self._lock = threading.Lock()  # one look at the folder at a time
        self._disk: FolderSnapshot | None = None  # the folder as last read
        self._live: _Templates | None = None  # what renders use
        self._passed = False  # the live version passed the check
        self._problems: tuple[TemplateProblem, ...] = ()
        self._generation = 0
        self._next_look = 0.0  # time.monotonic() after which a render looks at the folder again

    def render(
        self, kind: str, context: Mapping[str, object], *, language: str | None = None, inbox: str | None = None
    ) -> RenderedTouch:
        """Render touch ``kind`` for a customer whose language is ``language`` (None: the default).

        ``language`` is a tag such as "de" or "pt-BR" (of a list like "de-CH, de;q=0.8" the first counts); one
        that is not a language falls back to the default language.

        :raises TemplateError: no templates for the kind, or a template failed (with file and line).
        """
        if kind not in _KINDS:
            raise TemplateError([TemplateProblem(path="", line=None, message=f"unknown touch kind {kind!r}")])
        tag = language_tag(re.split(r"[,;\s]", language.strip(), maxsplit=1)[0]) if language else None
        return self._templates().render(kind, context, tag, _inbox_folder(inbox))

    def check(self, contexts: Iterable[tuple[str, Mapping[str, object]]] | None = None) -> list[TemplateProblem]:
        """Render every template on disk against the sample contexts (complete and minimal) and ``contexts``.

        Reports syntax errors, undefined variables, sandbox violations, limits, missing subject or text, and
        files or folders whose names the renderer does not know. An empty list means all is well. What renders
        use does not change; that is :meth:`refresh`'s work.
        """
        return _Templates(read_folder(self.directory), self._options, self._inliner).check(contexts)

    def problems(self) -> list[TemplateProblem]:
        """The problems of the files on disk as of the latest look (empty: they are what renders use)."""
        self._templates()
        return list(self._problems)

    def refresh(self) -> Refresh:
        """Look at the templates folder now; when it changed, check it, and use it from now on if it passes.

        Cheap when nothing changed (a listing of names, sizes and mtimes). A change costs one :meth:`check`
        with the sample contexts.
        """
        with self._lock:
            return self._look()

    def _templates(self) -> _Templates:
        """The version renders use, after a look at the folder if the last one is ``reload_interval`` old."""
        live = self._live
        due = live is None or time.monotonic() >= self._next_look
        if due and self._lock.acquire(blocking=live is None):  # a render never waits for another's check
            try:
                self._look()
            finally:
                self._lock.release()
        assert self._live is not None
        return self._live

    def _look(self) -> Refresh:
        self._next_look = time.monotonic() + self.reload_interval
        disk = self._disk
        if disk is not None and disk.settled and folder_stamp(self.directory) == disk.stamp:
            return self._state(changed=False)
        snapshot = read_folder(self.directory)
        if disk is not None and snapshot.version == disk.version:
            self._disk = snapshot  # the same files, with a newer stamp
            return self._state(changed=False)
        templates = _Templates(snapshot, self._options, self._inliner)
        problems = tuple(templates.check())
        self._disk, self._problems, self._generation = snapshot, problems, self._generation + 1
        if not problems or not self._passed:
            self._live, self._passed = templates, not problems
        return self._state(changed=True)

    def _state(self, *, changed: bool) -> Refresh:
        assert self._live is not None
        return Refresh(
            changed=changed,
            generation=self._generation,
            problems=self._problems,
            version=self._live.version,
            fallback=bool(self._problems) and self._passed,
        )


def _inbox_folder(inbox: str | None) -> str | None:
    if not inbox:
        return None
    if not _INBOX_RE.fullmatch(inbox):
        raise TemplateError([TemplateProblem(path=inbox, line=None, message="not a valid inbox folder name")])
    return inbox


class _Templates:
    """One version of the templates folder, and the sandbox that runs it (it keeps the compiled templates)."""

    def __init__(self, snapshot: FolderSnapshot, options: _Options, inliner: css_inline.CSSInliner) -> None:
        self.snapshot, self.options, self._inliner = snapshot, options, inliner
        self.default_language = options.default_language
        self._env = _Sandbox(_Loader(snapshot), options.max_output_chars)

    @property
    def version(self) -> str:
        return self.snapshot.version[:12]

    def render(self, kind: str, context: Mapping[str, object], tag: str | None, inbox: str | None) -> RenderedTouch:
        files = self._resolve(kind, tag or self.default_language, inbox)
        problems = files.missing()
        if problems:
            raise TemplateError(problems)
        values = _prepare(context, self._date_locale(tag, files.language))
        return self._render_files(files, values)

    def check(self, contexts: Iterable[tuple[str, Mapping[str, object]]] | None = None) -> list[TemplateProblem]:
        problems: list[TemplateProblem] = []
        extra: dict[str, list[Mapping[str, object]]] = {}
        for kind, context in contexts or ():
            if kind in _KINDS:
                extra.setdefault(kind, []).append(context)
            else:
                problems.append(TemplateProblem(path="", line=None, message=f"unknown touch kind {kind!r}"))
        folders = self._touch_folders(problems)
        for folder, folder_language in folders:
            for kind in self._kinds_in(folder, problems):
                files = self._files_in(folder, kind, folder_language)
                assert files is not None
                samples = [sample_context(kind), sample_context(kind, complete=False), *extra.get(kind, ())]
                problems += self._check_files(files, samples)
        problems += self._check_partials()
        problems += self._check_defaults()
        return list(dict.fromkeys(problems))

    # -- resolution ------------------------------------------------------------------------------------------

    def _candidates(self, tag: str, inbox: str | None) -> list[tuple[str, str]]:
        """(folder, folder language) in the order of the resolution rule."""
        base, default = _base_language(tag), self.default_language
        folders: list[tuple[str, str]] = []
        if inbox:
            folders.append((f"{inbox}/{tag}", tag))
            if _base_language(default) == base:
                folders.append((inbox, default))
        folders += [(tag, tag), (base, base), (default, default)]
        return list(dict.fromkeys(folders))

    def _resolve(self, kind: str, tag: str, inbox: str | None) -> _TouchFiles:
        for folder, folder_language in self._candidates(tag, inbox):
            files = self._files_in(folder, kind, folder_language)
            if files is not None:
                return files
        default = self.default_language
        raise TemplateError(
            [TemplateProblem(path=f"{default}/{kind}.txt", line=None, message=f"missing: no templates for {kind!r}")]
        )

    def _files_in(self, folder: str, kind: str, language: str) -> _TouchFiles | None:
        names = [f"{folder}/{kind}{suffix}" for _, suffix in _PARTS]
        found = [name if self.snapshot.is_file(name) else None for name in names]
        if not any(found):
            return None
        return _TouchFiles(folder, kind, language, found[0], found[1], found[2])

    def _date_locale(self, customer: str | None, folder_language: str) -> Locale:
        """Dates follow the customer's own variant when the template is in their language, else the template's."""
        if customer and _base_language(customer) == _base_language(folder_language):
            return _date_locale(customer)
        return _date_locale(folder_language)

    # -- rendering -------------------------------------------------------------------------------------------

    def _render_files(self, files: _TouchFiles, values: dict[str, Any]) -> RenderedTouch:
        assert files.subject is not None and files.text is not None
        budget = _Budget(self.options.time_limit, WORK_FACTOR * self.options.max_output_chars)
        used: set[str] = set()
        budget_token, used_token = _BUDGET.set(budget), _USED.set(used)
        try:
            subject = _one_line(self._render_template(files.subject, values))
            values = {**values, "subject": subject}
            text = _tidy_text(self._render_template(files.text, values))
            html = self._render_html(files.html, values) if files.html else None
        finally:
            _BUDGET.reset(budget_token)
            _USED.reset(used_token)
        return RenderedTouch(subject=subject, text=text, html=html, template=files.text, version=self._version(used))

    def _render_template(self, name: str, values: Mapping[str, Any]) -> str:
        """One template through ``generate()``, stopping it as soon as it exceeds the output or time limit."""
        try:
            return self._generate(self._env.get_template(name), values)
        except TemplateError:
            raise
        except Exception as exc:  # any failure of template code becomes a TemplateProblem
            raise TemplateError([self._problem(exc, name)]) from None

    def _generate(self, template: JinjaTemplate, values: Mapping[str, Any]) -> str:
        budget = _BUDGET.get()
        chunks: list[str] = []
        size, limit = 0, self.options.max_output_chars
        stream = cast(Generator[str, None, None], template.generate(values))
        try:
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit or (len(chunks) % 64 == 0 and budget is not None):
                    try:
                        if size > limit:
                            raise _too_big(f"the output of {template.name}", size, limit)
                        if budget is not None:
                            budget.tick()
                    except RenderLimitExceeded as exc:
                        stream.throw(exc)  # raised again at the template line that was producing output
                        raise
        finally:
            stream.close()
        return "".join(chunks)

    def _render_html(self, name: str, values: Mapping[str, Any]) -> str:
        html = self._render_template(name, values)
        try:
            return str(self._inliner.inline(html))
        except Exception as exc:  # css_inline raises its own InlineError and ValueError
            raise TemplateError([TemplateProblem(path=name, line=None, message=f"CSS: {exc}")]) from None

    def _version(self, used: set[str]) -> str:
        """The files a render used and their contents, as 12 hex digits."""
        digest = hashlib.sha256()
        for name in sorted(used):
            digest.update(f"{name}\0{self.snapshot.digests.get(name, '')}\0".encode())
        return digest.hexdigest()[:12]

    def _problem(self, exc: BaseException, name: str) -> TemplateProblem:
        if isinstance(exc, _UnusableFile):
            return TemplateProblem(path=exc.path, line=exc.line, message=exc.reason)
        if isinstance(exc, TemplateSyntaxError):
            path = exc.name or self._relative(exc.filename or "") or name
            return TemplateProblem(path=path, line=exc.lineno, message=f"syntax error: {exc.message}")
        path, line = self._template_frame(exc.__traceback__) or (name, None)
        return TemplateProblem(path=path, line=line, message=_describe(exc))

    def _template_frame(self, tb: TracebackType | None) -> tuple[str, int] | None:
        """The innermost traceback entry in a template file (Jinja rewrites tracebacks to point at them)."""
        found = None
        while tb is not None:
            path = self._relative(tb.tb_frame.f_code.co_filename)
            if path is not None:
                found = (path, tb.tb_lineno)
            tb = tb.tb_next
        return found

    def _relative(self, filename: str) -> str | None:
        root = self.snapshot.root
        if not filename.startswith(root):
            return None
        return filename[len(root) :].replace(os.sep, "/")

    # -- check -------------------------------------------------------------------------------------------------

    def _touch_folders(self, problems: list[TemplateProblem]) -> list[tuple[str, str]]:
        """Every folder that may hold touch templates, with its language; reports folders it does not know."""
        folders: list[tuple[str, str]] = []
        for name, is_folder in self.snapshot.entries(""):
            if not is_folder:
                if not name.startswith("_") and not name.upper().startswith("README"):
                    problems.append(
                        TemplateProblem(
                            path=name,
                            line=None,
                            message="unknown file: templates go in a language folder (en/) or an inbox folder",
                        )
                    )
            elif name.startswith("_"):
                continue
            elif language_tag(name) == name:
                folders.append((name, name))
            elif language_tag(name) is not None:
                problems.append(
                    TemplateProblem(
                        path=name,
                        line=None,
                        message=f"rename to {language_tag(name)}/ (language folders are named like en or pt-BR)",
                    )
                )
            elif _INBOX_RE.fullmatch(name):
                folders.append((name, self.default_language))
                folders += self._inbox_languages(name, problems)
            else:
                problems.append(TemplateProblem(path=name, line=None, message="not a valid inbox folder name"))
        return folders

    def _inbox_languages(self, inbox: str, problems: list[TemplateProblem]) -> list[tuple[str, str]]:
        folders = []
        for name, is_folder in self.snapshot.entries(inbox):
            if is_folder and not name.startswith("_"):
                if language_tag(name) == name:
                    folders.append((f"{inbox}/{name}", name))
                else:
                    problems.append(
                        TemplateProblem(
                            path=f"{inbox}/{name}",
                            line=None,
                            message="unknown folder: an inbox folder holds language folders such as de/",
                        )
                    )
        return folders

    def _kinds_in(self, folder: str, problems: list[TemplateProblem]) -> list[str]:
        kinds: dict[str, None] = {}
        holds_languages = "/" not in folder and language_tag(folder) != folder  # an inbox folder
        refusal = self.snapshot.refused.get(folder)
        if refusal is not None:
            problems.append(TemplateProblem(path=folder, line=None, message=refusal.message))
        for name, is_folder in self.snapshot.entries(folder):
            if name.startswith("_") or (is_folder and holds_languages):
                continue
            if is_folder:
                problems.append(
                    TemplateProblem(
                        path=f"{folder}/{name}",
                        line=None,
                        message="unknown folder: only partial folders (_name/) go here",
                    )
                )
                continue
            kind = _kind_of(name)
            if kind is None:
                problems.append(TemplateProblem(path=f"{folder}/{name}", line=None, message=_UNKNOWN_FILE))
            else:
                kinds[kind] = None
        return list(kinds)

    def _check_files(self, files: _TouchFiles, samples: list[Mapping[str, object]]) -> list[TemplateProblem]:
        problems = files.missing()
        locale = _date_locale(files.language)
        for sample in samples:
            values = _prepare(sample, locale)
            budget = _Budget(self.options.time_limit, WORK_FACTOR * self.options.max_output_chars)
            budget_token = _BUDGET.set(budget)
            try:
                values["subject"] = self._check_part(files.subject, values, problems, _one_line) or ""
                self._check_part(files.text, values, problems, _tidy_text)
                self._check_part(files.html, values, problems, self._inliner.inline)
            finally:
                _BUDGET.reset(budget_token)
        return problems

    def _check_part(
        self, name: str | None, values: Mapping[str, Any], problems: list[TemplateProblem], finish: Callable[[str], str]
    ) -> str | None:
        if name is None:
            return None
        try:
            return finish(self._render_template(name, values))
        except TemplateError as exc:
            problems += exc.problems
        except Exception as exc:  # css_inline failures
            problems.append(TemplateProblem(path=name, line=None, message=_describe(exc)))
        return None

    def _check_partials(self) -> list[TemplateProblem]:
        """Compile every partial, so a syntax error shows even where no touch includes it yet."""
        problems = []
        for name in self.snapshot.names:
            is_partial = any(part.startswith("_") for part in name.split("/"))
            if is_partial and name.endswith((".txt", ".html")):
                try:
                    self._env.get_template(name)
                except Exception as exc:
                    problems.append(self._problem(exc, name))
        return problems

    def _check_defaults(self) -> list[TemplateProblem]:
        default = self.default_language
        problems = []
        for kind in sorted(_KINDS):
            files = self._files_in(default, kind, default)
            if files is None:
                problems += [
                    TemplateProblem(
                        path=f"{default}/{kind}{suffix}",
                        line=None,
                        message="missing: every kind needs a subject and a text in the default language",
                    )
                    for _, suffix in _PARTS[:2]
                ]
        return problems


_UNKNOWN_FILE = (
    "unknown file name: expected KIND.subject.txt, KIND.txt or KIND.html with KIND one of "
    + ", ".join(kind.value for kind in TouchKind)
    + " (partials start with _)"
)


def _kind_of(filename: str) -> str | None:
    for _, suffix in _PARTS:
        if filename.endswith(suffix) and filename[: -len(suffix)] in _KINDS:
            return filename[: -len(suffix)]
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateNotFound):
        return f"template not found: {exc.name!r} (names are relative to the templates folder, e.g. 'en/_layout.html')"
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    if isinstance(exc, UndefinedError):
        return f"undefined: {exc}"
    if isinstance(exc, TemplateRuntimeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


_PLAIN = (str, int, float, type(None))


def _prepare(value: Any, locale: Locale) -> Any:
    """The context as templates see it: plain dicts and lists, every date a :class:`FormattedDate`."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {str(key): _prepare(item, locale) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_prepare(item, locale) for item in value]
    if isinstance(value, _dt.date):
        return FormattedDate(value, locale)
    return value


def _one_line(subject: str) -> str:
    """A header-safe subject: control characters (CR, LF, NUL, …) become spaces; trimmed and capped."""
    line = " ".join(_CONTROL_RE.sub(" ", subject).split())
    if len(line) > SUBJECT_MAX_CHARS:
        line = line[: SUBJECT_MAX_CHARS - 1].rstrip() + "…"
    return line


def _tidy_text(text: str) -> str:
    """Plain text as mail wants it: LF line ends, no trailing blanks (but "-- "), at most one empty line."""
    lines = [line if line == "-- " else line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return tidy + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Sample data


_TZ = _dt.timezone(_dt.timedelta(hours=1))


def _at(month: int, day: int, hour: int, minute: int = 0) -> _dt.datetime:
    return _dt.datetime(2026, month, day, hour, minute, tzinfo=_TZ)


_SAMPLE_TEXT = (
    "Hello,\n\nI received invoice 2026-114 today and the VAT number on it is our old one (DE 123 456 789). "
    "We changed it in September and updated it in our account settings.\n\n"
    "Could you send a corrected invoice? Our accountant needs it before the end of the month.\n\nThanks,\nJane"
)
_SAMPLE_EXCERPT = (
    "I received invoice 2026-114 today and the VAT number on it is our old one (DE 123 456 789). We changed it "
    "in September and updated it in our account settings. Could you send a corrected invoice? Our accountant …"
)
_SAMPLE_OUTCOME = (
    "The invoice was built from an old copy of your billing details that our system kept after you updated "
    "them. I have sent you a corrected invoice (2026-114-A) with your new VAT number, and we fixed the copy "
    "so your next invoices use the right details.\n\nSorry for the extra work this caused you and your accountant."
)
_STATES = {
    "acknowledgement": "received",
    "staff-notification": "received",
    "check-in": "outcome_sent",
    "closing": "checked_in",
}


def sample_context(kind: str, *, complete: bool = True) -> dict[str, object]:
    """Realistic data for previews and checks; ``complete=False`` leaves out every optional value."""
    sam = {"name": "Sam Rivera", "first_name": "Sam", "email": "sam@example.org"}
    has_outcome = complete and kind in ("outcome", "check-in", "closing")
    note = {
        "follow-through": "the fix is written and being tested; it needs one more review before it goes out",
        "staff-notification": "Jane Doe replied; the rules could not tell what they want, over to you",
        "staff-reminder": "escalated to the whole team: this was the last planned update",
        "closing": "the customer says all is well",
    }.get(kind, "")
    return {
        "customer": {
            "first_name": "Jane" if complete else "",
            "name": "Jane Doe" if complete else "",
            "email": "jane.doe@example.com",
        },
        "owner": sam,
        "inbox": {"name": "support", "address": "support@example.org", "display_name": "Example Support"},
        "loop": {
            "ref": "CL-7K3P",
            "subject": "Invoice shows the wrong VAT number",
            "state": _STATES.get(kind, "acknowledged"),
            "opened_at": _at(11, 24, 9, 12),
            "promised_by": _at(11, 27, 17) if complete else None,
            "outcome": _SAMPLE_OUTCOME if has_outcome else None,
            "outcome_at": _at(11, 26, 15, 30) if has_outcome else None,
            # the last reminder, just after the customer's third update (minimal: the first, before any went out)
            "follow_throughs": {"follow-through": 1, "staff-reminder": 3 if complete else 0}.get(kind, 0),
        },
        "message": {
            "subject": "Invoice shows the wrong VAT number",
            "text": _SAMPLE_TEXT,
            "excerpt": _SAMPLE_EXCERPT,
            "received_at": _at(11, 24, 9, 12),
            "from_name": "Jane Doe" if complete else "",
            "from_email": "jane.doe@example.com",
        },
        "outcome": _SAMPLE_OUTCOME if has_outcome else None,
        "earlier_loops": [
            {
                "ref": "CL-2M9Q",
                "subject": "Can I add a second user?",
                "opened_at": _at(3, 3, 10, 5),
                "outcome": "We added Tom to your account and showed him around.",
            },
            {"ref": "CL-8D4W", "subject": "Export to CSV", "opened_at": _at(1, 14, 16, 40), "outcome": None},
        ]
        if complete
        else [],
        "next_update": _at(12, 2, 17) if complete and kind == "follow-through" else None,
        "touch": {
            "kind": kind,
            "sequence": {"follow-through": 2, "staff-reminder": 3 if complete else 1}.get(kind, 1),
            "note": note if complete else "",
        },
        "unsubscribe": {
            "mailto": "mailto:support+unsubscribe@example.org?subject=unsubscribe",
            "url": "https://example.org/unsubscribe?t=7K3P" if complete else None,
        },
        "staff": [sam, {"name": "Alex Kim", "first_name": "Alex", "email": "alex@example.org"}],
        "record_outcome_hint": ('Reply to this email with the outcome, or run: closeloop outcome CL-7K3P --text "…"'),
    }


__all__ = [
    "MAX_TEMPLATE_CHARS",
    "FormattedDate",
    "Refresh",
    "RenderLimitExceeded",
    "RenderedTouch",
    "Renderer",
    "TemplateError",
    "TemplateProblem",
    "language_tag",
    "sample_context",
]
