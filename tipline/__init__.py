"""tipline: an anonymous safe-schools tip line."""
