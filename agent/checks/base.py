"""What a check is: a spec the registry lists, and the context the runner hands it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from posdiag.config import CheckConfig, Config
from posdiag.paths import Roots
from posdiag.results import CheckResult

C = TypeVar("C", bound=CheckConfig)


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may use besides its own config: never literals for paths."""

    name: str
    roots: Roots
    config: Config
    deadline: float = field(default_factory=lambda: time.monotonic() + 5.0)

    def remaining(self, cap: float | None = None) -> float:
        """Seconds left before the runner gives up on this check (never below 0.05)."""
        left = max(0.05, self.deadline - time.monotonic())
        return min(left, cap) if cap is not None else left


@dataclass(frozen=True)
class CheckSpec(Generic[C]):
    """A check as the registry knows it. Descriptions live in the locale catalogs."""

    name: str
    run: Callable[[CheckContext, C], CheckResult]
    config_type: type[C] = CheckConfig  # type: ignore[assignment]
    depends_on: tuple[str, ...] = ()
    enabled_by_default: bool = True
    timeout_s: float = 5.0

    def enabled(self, cfg: CheckConfig) -> bool:
        return self.enabled_by_default if cfg.enabled is None else cfg.enabled

    def timeout(self, cfg: CheckConfig) -> float:
        return cfg.timeout_s or self.timeout_s


AnySpec = CheckSpec[Any]
