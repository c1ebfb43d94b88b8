"""The typed parameters of a run, as shown in the Prefect UI form; unset fields come from Settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.settings import RankerName, Settings


class RunParameters(BaseModel):
    """What a person may choose for one run; anything left empty uses the deployment's settings (RECS_* env)."""

    run_date: date | None = Field(None, description="Night to compute (partition key). Empty: today.")
    data: Path | None = Field(None, description="MovieLens dir/file or interactions CSV/Parquet. Empty: built-in dataset.")
    catalog: Path | None = Field(None, description="Catalogue CSV (item_id,title,genres) for a generic interactions file.")
    home: Path | None = Field(None, description="Directory holding recs.duckdb, models/ and recommendations/.")
    ranker: RankerName | None = Field(None, description="als (offline, default) or llm.")
    k: int | None = Field(None, ge=1, le=100, description="Recommendations per user.")
    n_candidates: int | None = Field(None, ge=1, le=500, description="ALS candidates per user.")
    llm_model: str | None = Field(None, description="Chat model for the llm ranker.")
    llm_rpm: int | None = Field(None, ge=1, description="LLM requests per minute at most.")
    llm_tpm: int | None = Field(None, ge=1, description="LLM tokens per minute at most.")
    llm_concurrency: int | None = Field(None, ge=1, description="LLM requests in flight at most.")

    def settings(self) -> Settings:
        return Settings(**self.model_dump(exclude_none=True))
