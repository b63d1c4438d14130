"""The pure-Python engine of the two-level game: scenarios, win-sets, rules and scoring.

Nothing here imports Django or Channels; the web shell wraps it (DESIGN §7).
"""
