"""gatework.sim."""
