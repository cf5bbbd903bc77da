"""`sar-prompt novel COMMAND ...`; see sar_prompt/novel/lists_cli.py and
docs/novel_classes.md."""
import sys

from sar_prompt.novel.lists_cli import main

sys.exit(main())
