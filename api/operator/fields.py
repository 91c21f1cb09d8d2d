"""Request-body field types shared by the operator routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from schema.jsontext import unstorable


def _storable(text: str) -> str:
    # A NUL or lone surrogate would be accepted here and then fail the activity that stores it, on
    # every retry; refuse it while the caller is still listening (400 invalid_request names the field).
    unfit = unstorable(text)
    if unfit is not None:
        raise ValueError(unfit[1])
    return text


StorableText = Annotated[str, AfterValidator(_storable)]
