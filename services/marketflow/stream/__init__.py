"""The Faust app: thin agents that decode records, call the core and emit what it returns."""
