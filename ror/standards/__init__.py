"""National value sets of the ROR (pure code, no Django import)."""
