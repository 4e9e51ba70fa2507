"""Check summaries that can be said in every language the agent speaks.

A check's summary is a ``Summary``: a ``str`` whose value is the English text (the report's
``summary`` field, which the contract keeps in English for logs and scripts), carrying the message
id and its arguments so that the technician's table, the diagnosis and the fleet view can say it in
Chinese. Templates live in the locale catalogs under ``[summary]`` (``<lang>.summary.toml``), in
``str.format`` syntax; the tests require every id in every language with the same placeholders.

Arguments are numbers, identifiers (device paths, interface names, host names: not translated),
other ``Summary`` values (a phrase inside a phrase), or tuples of those, joined with the
language's list separator (``…clauses`` arguments with its clause separator).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

from posdiag.i18n import Texts, catalog

Arg: TypeAlias = "str | int | float | bool | Summary | tuple[Arg, ...] | None"
_FORMATTER = string.Formatter()
# Arguments a language may leave out of a template (every other one must appear in all of them):
# ``detail`` is a driver's or library's own English text, ``kind`` a translated phrase for the same
# thing; English shows the detail, Chinese the phrase (with the detail in brackets, or without).
OPTIONAL_ARGS = frozenset({"detail", "kind"})


class Summary(str):
    """The English text of message ``key`` with ``args``; ``localized(t)`` says it in ``t``'s
    language. An unknown id is a programming error and raises ``KeyError`` at once."""

    _key: str
    _args: Mapping[str, Any]

    def __new__(cls, key: str, /, **args: Any) -> Summary:
        for name, value in args.items():
            _check_arg(key, name, value)
        obj = super().__new__(cls, _render(catalog("en"), key, args))
        obj._key = key
        obj._args = MappingProxyType(dict(args))
        return obj

    @property
    def key(self) -> str:
        return self._key

    @property
    def args(self) -> Mapping[str, Any]:
        return self._args

    def localized(self, t: Texts) -> str:
        if t.lang == "en":
            return str(self)
        return _render(catalog(t.lang), self._key, self._args)

    def to_dict(self) -> dict[str, Any]:
        """``{"id": ..., "args": {...}}`` for JSON: a backend renders it in its own language."""
        return {"id": self._key, "args": {k: _arg_to_json(v) for k, v in self._args.items()}}

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles keep the message, not just text
        return (_rebuild, (self._key, dict(self._args)))


def _rebuild(key: str, args: dict[str, Any]) -> Summary:
    return Summary(key, **args)


def localized(text: str, t: Texts) -> str:
    """``text`` in ``t``'s language when it is a ``Summary``; other strings as they are."""
    return text.localized(t) if isinstance(text, Summary) else text


def from_dict(doc: Any) -> Summary | None:
    """The inverse of ``Summary.to_dict`` for documents that came over the wire; None when the
    document is not one (an older agent, another id set): the caller keeps the English text."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) \
            or not isinstance(doc.get("args", {}), dict):
        return None
    try:
        return Summary(doc["id"], **{k: _arg_from_json(v) for k, v in doc["args"].items()})
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def placeholders(template: str) -> frozenset[str]:
    """The argument names a template uses (for the catalog tests)."""
    return frozenset(name.split(".")[0].split("[")[0]
                     for _, name, _, _ in _FORMATTER.parse(template) if name)


def _check_arg(key: str, name: str, value: Any) -> None:
    if isinstance(value, tuple):
        for item in value:
            _check_arg(key, name, item)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise TypeError(f"summary {key}: argument {name} has type {type(value).__name__}")


def _render(cat: Mapping[str, Mapping[str, str]], key: str, args: Mapping[str, Any]) -> str:
    template = cat.get("summary", {}).get(key)
    if template is None:
        raise KeyError(f"no summary text {key!r} in the locale catalog")
    ui = cat.get("ui", {})
    # A tuple argument is a list ("a, b"); one whose name ends in "clauses" holds whole
    # statements, joined more strongly ("a; b"), as English and Chinese punctuation do.
    seps = (ui.get("list_separator", ", "), ui.get("clause_separator", "; "))
    return template.format_map({k: _value(cat, v, seps[k.endswith("clauses")])
                                for k, v in args.items()})


def _value(cat: Mapping[str, Mapping[str, str]], v: Any, sep: str) -> Any:
    if isinstance(v, Summary):
        return _render(cat, v.key, v.args)
    if isinstance(v, tuple):
        return sep.join(str(_value(cat, item, sep)) for item in v)
    return v


def _arg_to_json(v: Any) -> Any:
    if isinstance(v, Summary):
        return v.to_dict()
    if isinstance(v, tuple):
        return {"list": [_arg_to_json(item) for item in v]}
    return v


def _arg_from_json(v: Any) -> Any:
    if isinstance(v, dict) and "list" in v and isinstance(v["list"], list):
        return tuple(_arg_from_json(item) for item in v["list"])
    if isinstance(v, dict):
        nested = from_dict(v)
        if nested is None:
            raise ValueError("not a summary")
        return nested
    return v


def in_language(text: str, reason: str, t: Texts) -> str:
    """What a technician reads for a result: the summary in ``t``'s language; a summary that has
    no translation yet (plain text from a driver) leads with the localised reason title, so the
    problem is still named in that language."""
    if isinstance(text, Summary) or t.lang == "en":
        return localized(text, t)
    return f"{t.reason(reason)}：{text}"
