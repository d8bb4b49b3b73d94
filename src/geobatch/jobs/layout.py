"""Where a job's files live in blob storage.

Parts are named by zero-padded chunk number so that sorted order is input order.
"""

from __future__ import annotations


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def input_key(job_id: str) -> str:
    return f"jobs/{job_id}/input"


def chunk_key(job_id: str, seq: int) -> str:
    return f"jobs/{job_id}/chunks/{seq:07d}.parquet"


def chunk_errors_key(job_id: str, seq: int) -> str:
    """Records of the chunk that could not even be parsed (malformed rows)."""
    return f"jobs/{job_id}/chunks/{seq:07d}.errors.parquet"


def result_key(job_id: str, seq: int) -> str:
    return f"jobs/{job_id}/results/{seq:07d}.parquet"


def error_key(job_id: str, seq: int) -> str:
    return f"jobs/{job_id}/errors/{seq:07d}.parquet"


def work_prefixes(job_id: str) -> tuple[str, ...]:
    """Everything a job writes after its input (dropped on cancel)."""
    return (f"jobs/{job_id}/chunks", f"jobs/{job_id}/results", f"jobs/{job_id}/errors")
