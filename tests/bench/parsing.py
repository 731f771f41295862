"""The bulk imports' parsing, no database: a county's register of 10,000 children in GB18030 with Chinese column
names, as Excel saves it, and 2,000 volunteers, against splitting the same file into cells with the csv module alone.
(The unit tests check what the parsers answer; how fast they answer is measured here, never asserted there.)"""

from __future__ import annotations

import csv
import io
import time

from services.registry.importing import parse_children, parse_volunteers
from tests.helpers import to_csv
from tests.unit import test_child_import as children_file
from tests.unit import test_volunteer_import as volunteers_file

CHILD_ROWS_GOAL_SECONDS = 2.0  # 10,000 rows, as the unit test once asserted


def measure() -> dict[str, dict[str, float]]:
    """{"children"|"volunteers": {"rows", "seconds", "csv_seconds"}}."""
    found = {}
    for kind, module, parse, count in (
        ("children", children_file, parse_children, 10_000),
        ("volunteers", volunteers_file, parse_volunteers, 2_000),
    ):
        rows = [module.generated(i) for i in range(count)]
        raw = to_csv(list(module.LABELS.values()), ([row[f] for f in module.FIELDS] for row in rows), "gb18030")
        started = time.perf_counter()
        parsed = parse(raw)
        seconds = time.perf_counter() - started
        assert len(parsed.accepted) == count, parsed.rejected[:3]
        started = time.perf_counter()
        assert sum(1 for _ in csv.reader(io.StringIO(raw.decode("gb18030")))) == count + 1  # and the header
        alone = time.perf_counter() - started
        found[kind] = {"rows": float(count), "seconds": seconds, "csv_seconds": alone}
    return found
