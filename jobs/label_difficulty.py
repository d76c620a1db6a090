"""spark-submit entry point: `spark-submit jobs/label_difficulty.py --help` (same as `taosr1 corpus difficulty`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=["corpus", "difficulty", *sys.argv[1:]], prog_name="label_difficulty.py")
