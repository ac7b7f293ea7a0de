"""gatework.host."""
