"""Settings dataclasses from config sections: the one config boundary.

A trainer's settings dataclass takes the fields of the same names from its
config section (`from_section`); what a section states another way (an
image section's `epochs`) is derived by the dataclass's own `from_config`.
`check_positive` and `check_fields_positive` are the checks every settings
type's `validate` starts with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from avdigits.errors import ConfigError

T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any], **derived: Any
                 ) -> T:
  """`cls` built from the entries of `section` named like its fields (the
  others keep their defaults), with `derived` values taking precedence."""
  values = {f.name: section[f.name] for f in dataclasses.fields(cls)
            if f.name in section and f.name not in derived}
  values = {k: tuple(v) if isinstance(v, list) else v
            for k, v in values.items()}
  return cls(**values, **derived)


def check_positive(flag: str, value: Any) -> None:
  """`--config.<flag>` must be > 0 (a NaN is not)."""
  if not value > 0:
    raise ConfigError(f"--config.{flag} must be > 0, got {value}")


def check_fields_positive(values: Any, flag: str, *names: str) -> None:
  """Each field `names` of the settings `values` must be > 0
  (`--config.<flag>.<name>`)."""
  for name in names:
    check_positive(f"{flag}.{name}", getattr(values, name))
