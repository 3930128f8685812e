"""Business rules as data: conditions, outcomes, rule sets and the engine that evaluates orders."""
