"""One module per game; each defines `GAME = GameSpec(...)`. Listed by the registry."""
