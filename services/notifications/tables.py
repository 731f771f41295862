"""The service's tables' one metadata: its views and its own records (preferences, the outbox), created at start."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Views(DeclarativeBase):
    metadata = MetaData()
