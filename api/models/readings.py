"""Reading models: raw rows, buckets, pages of either, daily capture."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class ReadingPublic(BaseModel):
    ts: datetime
    pollutant: str
    kind: str
    value: float
    flag: str


class BucketPublic(BaseModel):
    bucket: datetime
    pollutant: str
    avg: float
    min: float
    max: float
    count: int


class ReadingsPage(BaseModel):
    mn: str
    start: datetime
    end: datetime
    bucket_s: int | None
    readings: list[ReadingPublic] | None = None
    buckets: list[BucketPublic] | None = None


class DayCapturePublic(BaseModel):
    day: date
    expected: int
    received: int
    valid: int
    capture_rate: float | None
    valid_rate: float | None


class CapturePage(BaseModel):
    mn: str
    interval_s: float
    start: datetime
    end: datetime
    days: list[DayCapturePublic]
    capture_rate: float | None
    valid_rate: float | None
