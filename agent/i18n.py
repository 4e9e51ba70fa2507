"""User-facing texts in English and Simplified Chinese, from ``posdiag/locale/<lang>.toml``.

The catalogs are data; tests require every key to exist in every language, so a missing
translation is a test failure, not a silent fallback. At run time an unknown key shows its id.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Mapping
from importlib import resources

LANGS = ("en", "zh_CN")


def resolve_lang(explicit: str | None = None, configured: str = "",
                 env: Mapping[str, str] | None = None) -> str:
    """--lang beats the config, which beats LC_ALL / LC_MESSAGES / LANG (POSIX precedence)."""
    for choice in (explicit, configured):
        if choice:
            return normalize(choice)
    env = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            return normalize(value)
    return "en"


def normalize(value: str) -> str:
    """``zh_CN.UTF-8``, ``zh-cn``, ``zh`` → ``zh_CN``; anything else → ``en``."""
    v = value.split(".")[0].split("@")[0].replace("-", "_").lower()
    return "zh_CN" if v in ("zh", "zh_cn", "zh_hans", "zh_sg") else "en"


@functools.cache
def catalog(lang: str) -> Mapping[str, Mapping[str, str]]:
    """``<lang>.toml`` merged with ``<lang>.<part>.toml`` files (e.g. ``en.diagnosis.toml``),
    so each area keeps its texts in its own file; a key defined twice is a packaging bug."""
    folder = resources.files("posdiag.locale")
    names = sorted(p.name for p in folder.iterdir()
                   if p.name == f"{lang}.toml" or (p.name.startswith(f"{lang}.")
                                                   and p.name.endswith(".toml")))
    merged: dict[str, dict[str, str]] = {}
    for name in names:
        for section, entries in tomllib.loads(folder.joinpath(name).read_text("utf-8")).items():
            target = merged.setdefault(section, {})
            twice = set(target) & set(entries)
            if twice:
                raise ValueError(f"locale {name}: [{section}] redefines {sorted(twice)}")
            target.update(entries)
    return merged


class Texts:
    """Look-ups in one language: ``t.ui("summary")``, ``t.hint("power.connect_charger")``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "en"
        self._cat = catalog(self.lang)

    def get(self, section: str, key: str) -> str:
        return self._cat.get(section, {}).get(key, key)

    def ui(self, key: str) -> str:
        return self.get("ui", key)

    def status(self, key: str) -> str:
        return self.get("status", key)

    def check(self, name: str) -> str:
        return self.get("check", name)

    def reason(self, code: str) -> str:
        return self.get("reason", code)

    def hint(self, hint_id: str) -> str:
        return self.get("hint", hint_id)
