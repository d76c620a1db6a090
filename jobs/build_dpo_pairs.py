"""spark-submit entry point: `spark-submit jobs/build_dpo_pairs.py --help` (same as `taosr1 corpus dpo`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=["corpus", "dpo", *sys.argv[1:]], prog_name="build_dpo_pairs.py")
