"""`python -m sar_prompt COMMAND ...`: the `sar-prompt` command (sar_prompt/cli.py)."""
import sys

from sar_prompt.cli import main

sys.exit(main())
