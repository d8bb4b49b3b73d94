"""Engines: pure functions from a batch of records to a batch of results and errors.

They know nothing of HTTP, databases or jobs, and are usable on their own.
"""

from geobatch.engines.result import EngineResult
from geobatch.engines.schemas import RECORD_SCHEMAS, RecordSchema
from geobatch.engines.validate import validate_records

__all__ = ["RECORD_SCHEMAS", "EngineResult", "RecordSchema", "validate_records"]
