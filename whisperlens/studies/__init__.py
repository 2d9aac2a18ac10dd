"""Studies that are one module each; bigger ones are packages of their own (features)."""
