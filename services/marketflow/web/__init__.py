"""The market board: a live page, its JSON API and server-sent events, read from Redis."""
