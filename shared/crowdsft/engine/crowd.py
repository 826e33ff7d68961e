"""Crowds: contributor preference vectors plus an expert target, drawn per run.

A *population* is a ``(P, d)`` matrix of candidate users; each run samples ``n + 1`` distinct
rows, the first being the expert. The synthetic population imitates MovieLens user x genre mean
ratings (genre popularity, per-user bias, unrated genres as 0) so the default CLI needs no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

N_GENRES = 20


@dataclass(frozen=True)
class Crowd:
    """One run's contributors ``users`` (``n x d``) and the expert's point ``expert`` (``d``)."""

    users: FloatArray
    expert: FloatArray

    @property
    def n_users(self) -> int:
        return int(self.users.shape[0])


def synthetic_population(
    rng: np.random.Generator, n_people: int = 610, n_genres: int = N_GENRES
) -> FloatArray:
    """A MovieLens-like user x genre matrix of mean ratings in [0.5, 5], 0 where unrated."""
    genre_mean = rng.uniform(3.0, 4.0, n_genres)
    coverage = rng.beta(8.0, 1.5, n_genres)  # chance a user has rated the genre
    coverage[-1] = 0.02  # like MovieLens's "(no genres listed)"
    user_bias = rng.normal(0.0, 0.4, (n_people, 1))
    ratings = genre_mean + user_bias + rng.normal(0.0, 0.5, (n_people, n_genres))
    ratings = np.clip(ratings, 0.5, 5.0)
    rated = rng.random((n_people, n_genres)) < coverage
    return np.where(rated, ratings, 0.0)


def sample_crowd(population: FloatArray, n_users: int, rng: np.random.Generator) -> Crowd:
    """Draw ``n_users`` contributors and one expert, all distinct, from ``population``."""
    if n_users + 1 > population.shape[0]:
        raise ValueError(f"population of {population.shape[0]} is too small for {n_users} + 1")
    picks = rng.choice(population.shape[0], size=n_users + 1, replace=False)
    return Crowd(users=population[picks[1:]].copy(), expert=population[picks[0]].copy())
