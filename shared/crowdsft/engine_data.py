"""Reads crowds from disk for the engine (the engine itself does no I/O).

MovieLens: each user becomes a point in R^20, their mean rating per genre (the 19 genres plus
"(no genres listed)"), 0 where they rated nothing of that genre, as in the Crowd-SFT paper.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.crowd import synthetic_population

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "(no genres listed)",
)

SYNTHETIC_SEED = 20250604  # fixed: the synthetic population is part of the benchmark definition


def load_movielens(directory: Path | str) -> NDArray[np.float64]:
    """User x genre mean-rating matrix (users in id order) from ``ratings.csv`` + ``movies.csv``."""
    directory = Path(directory)
    genre_index = {g: i for i, g in enumerate(GENRES)}
    movie_genres: dict[int, list[int]] = {}
    with (directory / "movies.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            movie_genres[int(row["movieId"])] = [
                genre_index[g] for g in row["genres"].split("|") if g in genre_index
            ]
    users: list[int] = []
    genres: list[int] = []
    ratings: list[float] = []
    with (directory / "ratings.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for g in movie_genres.get(int(row["movieId"]), []):
                users.append(int(row["userId"]))
                genres.append(g)
                ratings.append(float(row["rating"]))
    ids, user_idx = np.unique(np.array(users), return_inverse=True)
    shape = (ids.size, len(GENRES))
    sums = np.zeros(shape)
    counts = np.zeros(shape)
    np.add.at(sums, (user_idx, np.array(genres)), np.array(ratings))
    np.add.at(counts, (user_idx, np.array(genres)), 1.0)
    return np.divide(sums, counts, out=np.zeros(shape), where=counts > 0)


def load_population(spec: str) -> NDArray[np.float64]:
    """``synthetic`` or ``movielens:PATH`` (the CLI's ``--data`` option) to a population matrix."""
    if spec == "synthetic":
        return synthetic_population(np.random.default_rng(SYNTHETIC_SEED))
    kind, _, path = spec.partition(":")
    if kind == "movielens" and path:
        return load_movielens(path)
    raise ValueError(f"--data must be 'synthetic' or 'movielens:PATH', got {spec!r}")
