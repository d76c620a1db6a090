"""spark-submit entry point: `spark-submit jobs/sample_candidates.py --help` (the same as `taosr1 corpus candidates`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("sample_candidates")
