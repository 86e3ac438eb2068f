"""Infrastructure adapters: the embedded broker and Redis, and topic administration."""
