"""The one minter of run ids: ``<prefix>-<parts>-<8 hex>``, and attempt ids ``<run id>@<8 hex>``.

Why one: run ids become partition values, folder names, MLflow run names and Delta app-transaction ids, so they
share one alphabet (:data:`taosr1.job.Ident`) and one shape a reader can split on.
"""

from __future__ import annotations

import re
import uuid

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def new_id(*parts: object) -> str:
    """A fresh id from readable parts (unsafe characters folded to ``_``) and 8 random hex digits."""
    words = [_UNSAFE.sub("_", str(p)).strip("_") for p in parts if p not in (None, "")]
    return "-".join([*words, uuid.uuid4().hex[:8]])


def attempt_id(run_id: str) -> str:
    """The id of one attempt of a run that resumes or repeats under the same run id."""
    return f"{run_id}@{uuid.uuid4().hex[:8]}"
