"""Side-by-side measurements of emberflow against the peers a user would pick instead."""
