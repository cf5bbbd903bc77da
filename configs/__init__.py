"""Dataset and trainer configs, installed as the package data of `sar_prompt.configs`
(`sar_prompt.runs.protocols.CONFIG_ROOT` finds them there)."""
