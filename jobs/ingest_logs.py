"""spark-submit entry point: `spark-submit jobs/ingest_logs.py --help` (the same as `taosr1 ingest`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("ingest_logs")
