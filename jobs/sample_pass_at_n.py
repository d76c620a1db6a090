"""spark-submit entry point: `spark-submit jobs/sample_pass_at_n.py --help` (same as `taosr1 corpus pass-at-n`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=["corpus", "pass-at-n", *sys.argv[1:]], prog_name="sample_pass_at_n.py")
