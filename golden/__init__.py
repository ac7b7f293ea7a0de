"""gatework.golden."""
