"""Training of the generator on real map/model pairs (never imported by the command or generate)."""
