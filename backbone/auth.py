"""Who is calling: the principal a verified access token names, its role and the counties it may act in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# child_director (儿童主任): told when a high-risk child of their counties is overdue; no reach into the records
Role = Literal["admin", "coordinator", "volunteer", "donor", "service", "child_director"]
ROLES: tuple[Role, ...] = ("admin", "coordinator", "volunteer", "donor", "service", "child_director")


class Principal(BaseModel):
    """Who is calling: `sub` is their account id (or `service:<name>`), `counties` the county codes a coordinator is
    scoped to, `name` their display name, `session_id` the sign-in session the token belongs to (none for services
    and operators' tokens)."""

    model_config = ConfigDict(frozen=True)

    sub: str
    role: Role
    counties: list[str] = []
    name: str | None = None
    session_id: str | None = None

    def may_act_in(self, county_code: str) -> bool:
        if self.role in ("admin", "service"):
            return True
        return self.role == "coordinator" and county_code in self.counties
