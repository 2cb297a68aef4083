"""schemathesis hooks for ``test_openapi_fuzz.py`` (loaded by the schemathesis process, not by pytest).

Generated Idempotency-Keys come from a small space and repeat across cases with different
bodies, which the API rightly refuses (422 ``idempotency_key_reused``). Each valid key is made
unique, so a refusal means the request broke a documented rule, and a schema that admits what
the server refuses fails the run (``validation_mismatch``). Keys generated to be invalid stay.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import schemathesis

_VALID_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_numbers = itertools.count()


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """Suffix a valid ``Idempotency-Key`` with a run-wide counter, cut so it stays at most 128 characters.

    Long keys too: a generated 128-character key repeated for another item is a fair 422 that
    schemathesis would count against the schema.
    """
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:100]}-{next(_numbers)}"
