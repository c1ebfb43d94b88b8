"""The typed parameters of a run, as shown in the Prefect UI form; empty fields come from Settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

from tasks.errors import SettingsError, one_line
from tasks.settings import EVAL_LLM_USERS, GateMode, RankerName, Settings, SplitName


def optional(schema: dict[str, Any]) -> WithJsonSchema:
    """Show an optional field as its plain type in the UI form (not as a 'type | None' union); empty = unset."""
    return WithJsonSchema(schema)


OptionalDate = Annotated[date | None, optional({"type": "string", "format": "date"})]
OptionalPath = Annotated[Path | None, optional({"type": "string"})]
OptionalText = Annotated[str | None, optional({"type": "string"})]
OptionalCount = Annotated[int | None, optional({"type": "integer", "minimum": 1})]
OptionalFlag = Annotated[bool | None, optional({"type": "boolean"})]
OptionalRanker = Annotated[RankerName | None, optional({"type": "string", "enum": ["als", "llm"]})]
OptionalGate = Annotated[GateMode | None, optional({"type": "string", "enum": ["auto", "on", "off"]})]


class Checked(BaseModel):
    """Parameters whose invalid values become one SettingsError line (flags, UI form and RECS_* env alike)."""

    @classmethod
    def checked(cls, **values: Any) -> Self:
        try:
            return cls(**values)
        except ValidationError as error:
            raise SettingsError(one_line(error)) from None

    def settings(self) -> Settings:
        try:
            return Settings(**self.settings_values())
        except ValidationError as error:
            raise SettingsError(one_line(error)) from None

    def settings_values(self) -> dict[str, Any]:
        """The fields that override the worker's settings."""
        return self.model_dump(exclude_none=True)


class RunParameters(Checked):
    """What a person may choose for one run; anything left empty uses the worker's settings (RECS_* env)."""

    run_date: OptionalDate = Field(None, description="Night to compute (partition key). Empty: today.")
    data: OptionalPath = Field(None, description="MovieLens dir/file or interactions CSV/Parquet. Empty: built-in dataset.")
    catalog: OptionalPath = Field(None, description="Catalogue CSV (item_id,title,genres) for a generic interactions file.")
    home: OptionalPath = Field(None, description="Directory holding recs.duckdb, models/ and recommendations/.")
    ranker: OptionalRanker = Field(None, description="als (offline, the default) or llm.")
    k: OptionalCount = Field(None, ge=1, le=100, description="Recommendations per user (default 10).")
    n_candidates: OptionalCount = Field(None, ge=1, le=500, description="ALS candidates per user (default 30).")
    llm_model: OptionalText = Field(None, description="Chat model of the llm ranker.")
    llm_rpm: OptionalCount = Field(None, ge=1, description="LLM requests per minute at most.")
    llm_tpm: OptionalCount = Field(None, ge=1, description="LLM tokens per minute at most.")
    llm_concurrency: OptionalCount = Field(None, ge=1, description="LLM requests in flight at most.")
    replace_source: OptionalFlag = Field(
        None, description="The source differs from the one the home was built from: replace the home's data (published partitions are kept)."
    )
    llm_max_users: OptionalCount = Field(
        None, ge=1, description="Uncached users sent to the LLM per run at most (most changed first; the rest keep ALS order)."
    )
    llm_gate: OptionalGate = Field(
        None, description="auto: the nightly canary decides whether the LLM beats ALS; on: always use it; off: no canary."
    )


class EvalParameters(Checked):
    """One offline evaluation (`recs eval`, or the `evaluate-recs/on-demand` deployment); empty fields use the defaults."""

    data: OptionalPath = Field(None, description="MovieLens dir/file or interactions CSV/Parquet. Empty: built-in dataset.")
    catalog: OptionalPath = Field(None, description="Catalogue CSV (item_id,title,genres) for a generic interactions file.")
    split: SplitName = Field(
        "random", description="random: the original 90/10 protocol; ua / ub: MovieLens 100k's fixed splits (need ua.base/ua.test)."
    )
    sample_users: OptionalCount = Field(
        None, ge=1, description="Average over a seeded sample of test users (the original: 20) with a bootstrap 95% CI. Empty: all."
    )
    seed: int = Field(42, description="Seed of the split, the user sample and the bootstrap.")
    llm_users: int = Field(EVAL_LLM_USERS, ge=1, description="With an LLM endpoint: users (seeded sample) the LLM rows are computed on.")
    json_file: OptionalPath = Field(None, description="Also write the metrics (long format) to this JSON file.")
    plot: OptionalPath = Field(None, description="Also write a PNG: each metric against K per method.")

    def settings_values(self) -> dict[str, Any]:
        return self.model_dump(include={"data", "catalog"}, exclude_none=True)
