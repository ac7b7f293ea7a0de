"""gatework.hdl."""
