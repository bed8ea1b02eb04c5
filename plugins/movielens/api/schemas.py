"""The API's responses: each answer's shape once, so the OpenAPI document and the pages agree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, in a sentence")


class Movie(BaseModel):
    movie_id: int
    title: str | None = None
    year: int | None = None
    genres: list[str] = Field(default_factory=list)


class Because(BaseModel):
    """The movie the user rated that a pick is most similar to (from the served similar-movies lists)."""

    movie_id: int
    title: str | None = None
    similarity: float


class Recommendation(Movie):
    rank: int
    score: float
    because: Because | None = Field(None, description="Set with ?explain=true when a rated movie explains the pick")


class Fallback(BaseModel):
    reason: str
    basis: str


class Recommendations(BaseModel):
    user_id: int
    model_ds: str = Field(description="The date of the served lists this answer comes from")
    source: str = Field(description="Where the answer was read: a lake table or the serving database")
    fallback: Fallback | None = Field(None, description="Set when the user is not in the served lists: the "
                                                        "popularity fallback answered")
    items: list[Recommendation]


class SimilarMovie(Movie):
    rank: int
    similarity: float


class SimilarMovies(BaseModel):
    movie: Movie
    model_ds: str
    source: str
    items: list[SimilarMovie]


class MovieSearch(BaseModel):
    query: str
    items: list[Movie]


class Run(BaseModel):
    """One date's run as its summary records it."""

    ds: str
    run_id: str | None = None
    files_validated: int = 0
    files_rejected: int = 0
    published: bool | None = Field(None, description="Whether the publish gate served this date's lists")
    served_ds: str | None = Field(None, description="The date served after this run (itself, or the champion kept)")
    gate_reasons: list[str] = Field(default_factory=list)
    tuning: str | None = None
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict, description="Model -> metric -> value")
    backtest: dict[str, Any] = Field(default_factory=dict, description="Yesterday's lists scored on this date's ratings")
    drift: dict[str, Any] = Field(default_factory=dict)
    links: dict[str, str | None] = Field(default_factory=dict, description="HTTP pages of this run (report, Data Docs, "
                                                                          "Airflow run)")
    lake: dict[str, str | None] = Field(default_factory=dict, description="The same outputs as lake URLs")


class Runs(BaseModel):
    items: list[Run]
