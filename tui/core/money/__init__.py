"""Money: the pricing table, budgets and caps, spend over a log, and forecasts."""
