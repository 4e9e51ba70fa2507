"""Configuration: one TOML file plus ``conf.d/*.toml`` drop-ins, validated strictly.

Every section is a frozen dataclass; the loader walks the dataclass fields, so a key that is not a
field is an error, a value of the wrong type is an error, and a field's ``rule`` checks its value.
Each error names the file that set the key, the dotted key and the problem (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from posdiag.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/posdiag/posdiag.toml")
Rule = Callable[[Any], "str | None"]


def rule(check: Rule, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field whose value ``check`` validates (it returns a problem text or None)."""
    if default is dataclasses.MISSING:
        return field(metadata={"rule": check}, **kw)
    if isinstance(default, list | dict | set):
        raise TypeError("use default_factory for mutable defaults")
    return field(default=default, metadata={"rule": check}, **kw)


def between(lo: float, hi: float) -> Rule:
    return lambda v: None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}, not {v!r}"


def positive(v: float) -> str | None:
    return None if v > 0 else f"must be greater than 0, not {v!r}"


def non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be 0 or more, not {v!r}"


def port_number(v: int) -> str | None:
    return None if 1 <= v <= 65535 else f"must be a TCP port 1-65535, not {v!r}"


def absolute_path(v: str) -> str | None:
    return None if v.startswith("/") else f"must be an absolute path, not {v!r}"


def optional_file(v: str) -> str | None:
    return None if v == "" or v.startswith("/") else f"must be an absolute path or empty, not {v!r}"


def non_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


_TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def terminal_id(v: str) -> str | None:
    if v == "" or _TERMINAL_ID.match(v):
        return None
    return (f"{v!r} is not a valid terminal id (letters, digits, '.', '_', '-', at most 64; "
            "it becomes part of MQTT topics)")


def _default_terminal_id() -> str:
    return "T-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "unknown")[:60]


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TerminalConfig:
    id: str = rule(terminal_id, "")  # empty: derived from the host name
    lang: Literal["", "en", "zh_CN"] = ""  # empty: from LC_ALL / LANG


@dataclass(frozen=True)
class PathsConfig:
    sysfs: str = rule(absolute_path, "/sys")
    procfs: str = rule(absolute_path, "/proc")
    rootfs: str = rule(absolute_path, "/")
    state_dir: str = rule(absolute_path, "/var/lib/posdiag")


@dataclass(frozen=True)
class MqttConfig:
    host: str = rule(non_empty, "localhost")
    port: int = rule(port_number, 8883)
    tls: bool = True
    ca_file: str = rule(optional_file, "")
    cert_file: str = rule(optional_file, "")
    key_file: str = rule(optional_file, "")
    username: str = ""
    password_file: str = rule(optional_file, "")
    topic_prefix: str = rule(
        lambda v: None if v and not set(v) & {"+", "#"} and not v.startswith("/")
        and not v.endswith("/") else f"{v!r} is not a valid topic prefix", "posdiag/v1")
    # 540 s: the broker sends the Last Will after 1.5x = 13.5 min of silence, so a dead terminal is
    # noticed within 15 min while idle pings stay cheap on a metered link.
    keepalive_s: int = rule(between(10, 3600), 540)
    max_inflight: int = rule(between(1, 100), 10)
    reconnect_min_s: float = rule(between(0.1, 60), 1.0)
    reconnect_max_s: float = rule(between(1, 3600), 300.0)
    connect_timeout_s: float = rule(between(1, 120), 10.0)

    def validate(self) -> Iterable[tuple[str, str]]:
        if self.reconnect_max_s < self.reconnect_min_s:
            yield "reconnect_max_s", "must not be below reconnect_min_s"
        if (self.cert_file == "") != (self.key_file == ""):
            yield "key_file" if self.cert_file else "cert_file", \
                "cert_file and key_file go together (client certificate and its key)"


@dataclass(frozen=True)
class OutboxConfig:
    path: str = rule(absolute_path, "/var/lib/posdiag/outbox.sqlite")
    max_bytes: int = rule(between(256 * 1024, 1 << 34), 8 * 1024 * 1024)


@dataclass(frozen=True)
class ReportConfig:
    valid_for_s: int = rule(between(30, 7 * 86400), 900)


@dataclass(frozen=True)
class RunnerConfig:
    max_workers: int = rule(between(1, 64), 8)


@dataclass(frozen=True)
class DaemonConfig:
    """Cadence of ``posdiag run``. Defaults are for metered cellular links (≤ 1 MB/month)."""

    heartbeat_s: int = rule(between(1, 86400), 3600)
    report_s: int = rule(between(1, 7 * 86400), 86400)
    check_interval_s: int = rule(between(1, 86400), 300)
    jitter_percent: float = rule(between(0, 50), 10.0)
    event_holdoff_s: int = rule(between(0, 86400), 600)
    publish_rate_per_s: float = rule(between(0.1, 1000), 5.0)
    max_queued_commands: int = rule(between(1, 16), 4)


@dataclass(frozen=True)
class RecorderConfig:
    """The network flight recorder (``posdiag history``): one sample a minute, local only."""

    enabled: bool = True
    path: str = rule(optional_file, "")  # empty: flightlog.bin in the state dir
    hours: int = rule(between(1, 720), 72)  # the file is 32 + hours x 60 x 24 bytes
    probe_host: str = ""  # host:port; empty: the first payment_host target
    probe_interval_s: int = rule(between(60, 3600), 60)
    probe_timeout_s: float = rule(between(0.1, 2.0), 2.0)


@dataclass(frozen=True)
class CheckConfig:
    """Keys every ``[checks.<name>]`` table accepts; a check's own config subclasses this."""

    enabled: bool | None = None  # None: the check's own default
    timeout_s: float = rule(lambda v: None if v == 0 or 0.1 <= v <= 600
                            else f"must be 0 (check default) or 0.1-600, not {v!r}", 0.0)
    interval_s: float = rule(lambda v: None if v == 0 or 1 <= v <= 7 * 86400
                             else f"must be 0 (daemon default) or 1-604800, not {v!r}", 0.0)


@dataclass(frozen=True)
class Config:
    terminal: TerminalConfig = field(default_factory=TerminalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    checks: Mapping[str, CheckConfig] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the files it was read from, in order

    @property
    def terminal_id(self) -> str:
        return self.terminal.id or _default_terminal_id()

    def check(self, name: str) -> CheckConfig:
        return self.checks[name]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
Origins = dict[tuple[str | int, ...], str]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "", "is a directory, not a config file") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), "", f"not UTF-8 text (byte {e.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML: {e}") from None


def _merge(into: dict[str, Any], new: Mapping[str, Any], origins: Origins, file: str,
           prefix: tuple[str | int, ...] = ()) -> None:
    """Deep-merge tables; a later file's scalar or array replaces the earlier one."""
    for key, value in new.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origins, file, path)
        else:
            into[key] = value
            for old in [p for p in origins if p[: len(path)] == path]:
                del origins[old]
            origins[path] = file
            if isinstance(value, dict):
                _record(value, origins, file, path)


def _record(value: Any, origins: Origins, file: str, path: tuple[str | int, ...]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            origins[(*path, k)] = file
            _record(v, origins, file, (*path, k))


def _origin(origins: Origins, path: tuple[str | int, ...], fallback: str) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return fallback


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


class _Builder:
    def __init__(self, origins: Origins, fallback: str) -> None:
        self.origins = origins
        self.fallback = fallback

    def error(self, path: tuple[str | int, ...], problem: str) -> ConfigError:
        return ConfigError(_origin(self.origins, path, self.fallback), _dotted(path), problem)

    def dataclass(self, cls: type, data: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(data, dict):
            raise self.error(path, f"must be a table, not {_tname(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "files"}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                # At the top level, [checks.*] is read apart from the other sections.
                names = [*fields, "checks"] if cls is _Sections else list(fields)
                known = ", ".join(sorted(names)) or "none"
                raise self.error((*path, key), f"unknown key (known keys here: {known})")
            kpath = (*path, key)
            v = self.value(hints[key], value, kpath)
            check = fields[key].metadata.get("rule")
            if check is not None and v is not None:
                problem = check(v)
                if problem:
                    raise self.error(kpath, problem)
            kwargs[key] = v
        missing = [n for n, f in fields.items() if n not in kwargs
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise self.error(path, f"missing required key {', '.join(missing)}")
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if validate is not None:
            for key, problem in validate():
                raise self.error((*path, key), problem)
        return obj

    def value(self, tp: Any, value: Any, path: tuple[str | int, ...]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) == 1:
                return self.value(non_none[0], value, path)
        if origin is Literal:
            if value not in args:
                allowed = ", ".join(repr(a) for a in args)
                raise self.error(path, f"must be one of {allowed}, not {value!r}")
            return value
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)  # type: ignore[arg-type]
        if origin is tuple:
            if not isinstance(value, list):
                raise self.error(path, f"must be an array, not {_tname(value)}")
            return tuple(self.value(args[0], v, (*path, i)) for i, v in enumerate(value))
        if origin in (dict, Mapping):
            if not isinstance(value, dict):
                raise self.error(path, f"must be a table, not {_tname(value)}")
            return {k: self.value(args[1], v, (*path, k)) for k, v in value.items()}
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(path, f"must be true or false, not {_tname(value)}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(path, f"must be an integer, not {_tname(value)}")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(path, f"must be a number, not {_tname(value)}")
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise self.error(path, f"must be a string, not {_tname(value)}")
            return value
        raise TypeError(f"config type {tp!r} not supported")  # a bug in a config dataclass


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def config_files(config: Path | None) -> list[Path]:
    """The main file (may be absent when it is the default) and its sorted conf.d drop-ins."""
    main = config or DEFAULT_CONFIG
    dropins = sorted((main.parent / "conf.d").glob("*.toml")) if main.parent.is_dir() else []
    return [main, *dropins]


def load(config: Path | None, check_types: Mapping[str, type[CheckConfig]]) -> Config:
    """Read, merge and validate. ``check_types`` maps each registered check to its config class.

    The default file may be missing (a fresh terminal runs on defaults); a file named with
    ``--config`` must exist.
    """
    files = config_files(config)
    merged: dict[str, Any] = {}
    origins: Origins = {}
    used: list[str] = []
    for i, f in enumerate(files):
        if i == 0 and config is None and not f.exists():
            continue
        _merge(merged, _read_toml(f), origins, str(f))
        used.append(str(f))
    return build(merged, check_types, origins, str(files[0]), tuple(used))


def build(data: Mapping[str, Any], check_types: Mapping[str, type[CheckConfig]],
          origins: Origins | None = None, fallback: str = "<config>",
          files: tuple[str, ...] = ()) -> Config:
    b = _Builder(origins or {}, fallback)
    data = dict(data)
    checks_raw = data.pop("checks", {})
    if not isinstance(checks_raw, dict):
        raise b.error(("checks",), f"must be a table, not {_tname(checks_raw)}")
    sections = b.dataclass(_Sections, data, ())
    checks: dict[str, CheckConfig] = {}
    for name, table in checks_raw.items():
        if name not in check_types:
            known = ", ".join(sorted(check_types))
            raise b.error(("checks", name), f"unknown check (known checks: {known})")
        checks[name] = b.dataclass(check_types[name], table, ("checks", name))
    for name, cls in check_types.items():
        checks.setdefault(name, cls())
    return Config(**{f.name: getattr(sections, f.name) for f in dataclasses.fields(_Sections)},
                  checks=checks, files=files)


@dataclass(frozen=True)
class _Sections:
    terminal: TerminalConfig = field(default_factory=TerminalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)


# --------------------------------------------------------------------------------------------
# Printing the effective config
# --------------------------------------------------------------------------------------------
def as_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name != "files"}
    if isinstance(obj, Mapping):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [as_dict(v) for v in obj]
    return obj


def to_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for the effective config (stdlib reads TOML but cannot write it)."""
    lines: list[str] = []
    _emit_table(data, (), lines)
    return "\n".join(lines).strip() + "\n"


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_scalar(k)


def _toml_scalar(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    raise TypeError(type(v))


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit_table(data: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items()
               if v is not None and not isinstance(v, dict) and not _is_table_array(v)}
    if path and (scalars or not data):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for k, v in scalars.items():
        lines.append(f"{_toml_key(k)} = {_toml_scalar(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            _emit_table(v, (*path, k), lines)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(_toml_key(p) for p in (*path, k)) + "]]")
                for ik, iv in item.items():
                    if iv is not None:
                        lines.append(f"{_toml_key(ik)} = {_toml_scalar(iv)}")


def secret_file_warnings(cfg: Config) -> list[str]:
    """Private keys and password files must not be readable by every user (DESIGN §6)."""
    import os
    import stat

    out = []
    for key in ("key_file", "password_file"):
        path = getattr(cfg.mqtt, key)
        if not path:
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            out.append(f"mqtt.{key}: {path}: cannot stat: {e.strerror}")
            continue
        if mode & stat.S_IROTH:
            out.append(f"mqtt.{key}: {path} is readable by every user (mode "
                       f"{stat.S_IMODE(mode):04o}); run: chmod o-rwx {path}")
    return out
