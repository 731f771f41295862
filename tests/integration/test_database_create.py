"""Starting a service creates what its database lacks: new tables, and new indexes of tables kept from before."""

from __future__ import annotations

from sqlalchemy import Index, Integer, MetaData, String, inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import Database


class Kept(DeclarativeBase):
    metadata = MetaData()


class Place(Kept):
    __tablename__ = "places"
    __table_args__ = (Index("ix_places_county", "county_code", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))


async def test_an_index_added_later_is_created_on_a_database_kept_from_before(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.create(Kept.metadata)
        async with db.begin() as conn:
            await conn.execute(text("DROP INDEX ix_places_county"))  # as a database made before the index existed
            await conn.execute(text("INSERT INTO places (id, county_code) VALUES (1, '450325')"))
        await db.create(Kept.metadata)
        async with db.read() as conn:
            indexes = await conn.run_sync(lambda sync: [i["name"] for i in inspect(sync).get_indexes("places")])
            kept = await conn.scalar(text("SELECT count(*) FROM places"))
        assert "ix_places_county" in indexes
        assert kept == 1  # the table itself was left as it was
        await db.create(Kept.metadata)  # and nothing to do the next time
    finally:
        await db.dispose()
