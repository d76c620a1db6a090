"""spark-submit entry point: `spark-submit jobs/evaluate.py --help` (same as `taosr1 evaluate`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=[*"evaluate".split(), *sys.argv[1:]], prog_name="evaluate.py")
