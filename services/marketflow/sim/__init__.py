"""A seeded market-day simulator whose end-of-day figures are fitted to a scenario file."""
