"""CoOp-compatible entry point: `python train.py --trainer CoOpSAR ...` (see sar_prompt/train.py)."""
import sys

try:
    from sar_prompt.train import main
except ImportError as exc:
    sys.exit(f"error: cannot import sar_prompt ({exc}). Install the plugin first: "
             "pip install -e <this repository>, and Dassl (see README).")

if __name__ == "__main__":
    sys.exit(main())
