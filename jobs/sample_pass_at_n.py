"""spark-submit entry point: `spark-submit jobs/sample_pass_at_n.py --help` (the same as `taosr1 corpus pass-at-n`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("sample_pass_at_n")
