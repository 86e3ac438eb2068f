"""Alert and figure delivery: Redis (stream, channel, latest hashes) and Slack."""
