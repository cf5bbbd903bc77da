"""Novel-class lists (one JSON per dataset), shipped as package data of sar_prompt."""
