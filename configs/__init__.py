"""Dataset and trainer configs, installed as the package data of `sar_prompt.configs`
(`sar_prompt.protocol.CONFIG_ROOT` finds them there)."""
