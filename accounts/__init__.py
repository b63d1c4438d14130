"""Accounts: instructors, players and join codes. For now, sign in and sign out."""
