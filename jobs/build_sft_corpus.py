"""spark-submit entry point: `spark-submit jobs/build_sft_corpus.py --help` (same as `taosr1 corpus sft`)."""

import sys

from taosr1.cli import app

if __name__ == "__main__":
    app(args=["corpus", "sft", *sys.argv[1:]], prog_name="build_sft_corpus.py")
