"""Parlour game engine: the only writer of game state (pure rules + thin I/O)."""
