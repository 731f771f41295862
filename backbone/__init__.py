"""The event plumbing every service shares: append, publish, consume, project, and the service bootstrap."""
