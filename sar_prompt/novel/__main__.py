"""`python -m sar_prompt.novel COMMAND ...`; see sar_prompt/novel/cli.py and docs/novel_classes.md."""
import sys

from .cli import main

sys.exit(main())
