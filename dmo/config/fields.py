"""What every config section shares: frozen models that refuse unknown keys, identifiers, size limits."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from dmo.config import names

DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_IMAGE_SIZE = 1024
# Domains are generated and held in memory as uint8 images; past this the machine, not the
# config, would say no (image_size 4096 with 3,500 samples asked for 89 GiB).
MAX_IMAGE_BYTES = 4 << 30


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _identifier(value: str) -> str:
    if not DOMAIN_NAME.match(value):
        raise ValueError("must match [a-z][a-z0-9_]* (at most 32 characters)")
    return value


# A name used in weights, scores, tables, recipes and file names.
Identifier = Annotated[str, AfterValidator(_identifier)]


def known_name(allowed: Collection[str], what: str) -> AfterValidator:
    """A field holding one of a registry's names (``Annotated[str, known_name(names.SAMPLERS, "sampler")]``):
    anything else is refused with the known names listed, the one rule for every registry a config names."""
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(names.unknown_name(value, list(allowed), what))
        return value

    return AfterValidator(check)
