"""spark-submit entry point: `spark-submit jobs/train_sft.py --help` (same as `taosr1 train sft`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=[*"train sft".split(), *sys.argv[1:]], prog_name="train_sft.py")
