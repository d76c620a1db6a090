"""spark-submit entry point: `spark-submit jobs/train_grpo.py --help` (same as `taosr1 train grpo`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=[*"train grpo".split(), *sys.argv[1:]], prog_name="train_grpo.py")
