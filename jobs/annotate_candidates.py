"""spark-submit entry point: `spark-submit jobs/annotate_candidates.py --help` (the same as `taosr1 corpus annotate`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("annotate_candidates")
