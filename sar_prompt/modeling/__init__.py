"""CLIP pieces shared by every trainer: loading, text encoding, prompt tokens, the prompted model."""
