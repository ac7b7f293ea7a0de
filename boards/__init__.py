"""gatework.boards."""
