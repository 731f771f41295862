"""The JetStream streams: one per context plus the dead-letter stream, configured on purpose, not by default."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from contracts.catalogue import CONTEXT_STREAMS

DEADLETTER = "DEADLETTER"
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_config(name: str, subjects: list[str], replicas: int) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,  # keep every event: projections are rebuilt from the streams
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,  # a full stream refuses writes rather than dropping history
        max_age=0,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        allow_direct=True,
    )


async def ensure_streams(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create or update every stream; idempotent, safe for all replicas of all services to call at start."""
    configs = [stream_config(name, [f"{context}.>"], replicas) for context, name in CONTEXT_STREAMS.items()]
    configs.append(stream_config(DEADLETTER, ["deadletter.>"], replicas))
    for config in configs:
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
