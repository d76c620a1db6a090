"""spark-submit entry point: `spark-submit jobs/train_sft.py --help` (the same as `taosr1 train sft`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("train_sft")
