"""One widget per module, each with its own DEFAULT_CSS (structure only; colours in app.tcss)."""
