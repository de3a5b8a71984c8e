"""What every benchmark shares: where ``../shared/data`` is, and the one JSON object a benchmark
prints when the data it reads is absent."""

import json
from pathlib import Path

from core.models import SHARED_DATA  # noqa: F401  (re-exported for the benchmarks)


def shared_data_or_skip(path: Path) -> bool:
    """True when ``path`` exists; otherwise prints ``{"skipped": why}`` and returns False."""
    if path.exists():
        return True
    print(json.dumps({"skipped": f"{path} is absent: the shared data folder must sit beside the repository"}))
    return False
