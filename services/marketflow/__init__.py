"""marketflow: a streaming market-flow monitor for Hong Kong equities."""

__version__ = "0.1.0"
