"""`marketflow tail`: follow an output topic or the Redis alert stream."""
