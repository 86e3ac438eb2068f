"""The framework-free market core: records, reference data, state, sectors, rules.

Nothing in this package imports Kafka, Faust, Redis, Prometheus or reads a clock: time is
passed in as event-time epoch milliseconds, so the Faust agents and `marketflow backtest`
run exactly the same code.
"""
