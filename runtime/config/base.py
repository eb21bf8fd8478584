"""The base every settings section derives from (unknown keys are an error)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One ``[table]`` of the settings file: every field titled and bounded; a key it does
    not declare is an error that names it."""

    model_config = ConfigDict(extra="forbid")
