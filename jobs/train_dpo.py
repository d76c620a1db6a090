"""spark-submit entry point: `spark-submit jobs/train_dpo.py --help` (same as `taosr1 train dpo`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=[*"train dpo".split(), *sys.argv[1:]], prog_name="train_dpo.py")
