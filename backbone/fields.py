"""Field types the HTTP APIs share."""

from typing import Annotated

from pydantic import StringConstraints

# Free text a person typed: no control characters (a NUL would reach the database as an error, not a 4xx).
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]
