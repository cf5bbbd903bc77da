import sys

from sar_prompt.results.tables_cli import main

sys.exit(main())
