"""The built-in default dataset: a seeded synthetic movie catalogue and ratings drawn from latent tastes.

Items have genres, latent factors, a quality and a long-tail popularity; users have genre tastes,
latent factors, a rating bias and a long-tail activity. A user rates items with propensity
popularity x exp(sharpness x affinity) (Gumbel top-k, batched over users) and the rating is
affinity + biases + noise, cut into 1..5 at quantiles that give a MovieLens-like distribution.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

GENRES = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family", "Fantasy",
    "History", "Horror", "Music", "Mystery", "Romance", "Science Fiction", "Thriller", "War", "Western",
)  # fmt: skip
GENRE_WEIGHTS = np.array([8, 5, 2, 10, 5, 2, 14, 3, 3, 2, 4, 2, 3, 6, 4, 6, 2, 1], dtype=float)
GENRES_PER_ITEM_PROBS = (0.45, 0.35, 0.20)  # items with 1, 2 and 3 genres

ADJECTIVES = (
    "Silent", "Crimson", "Hidden", "Last", "Broken", "Golden", "Midnight", "Frozen", "Savage", "Distant",
    "Electric", "Wild", "Lonely", "Burning", "Secret", "Endless", "Forgotten", "Restless", "Hollow", "Iron",
    "Velvet", "Scarlet", "Quiet", "Dark", "Bright", "Lost", "Final", "Fallen", "Rising", "Wandering",
    "Little", "Sweet", "Bitter", "Eternal", "Shattered", "Stolen", "Northern", "Sleeping", "Painted", "Glass",
    "Silver", "Emerald", "Radiant", "Crooked", "Hungry", "Gentle", "Reckless", "Invisible",
)  # fmt: skip
NOUNS = (
    "Harbor", "River", "Kingdom", "Horizon", "Garden", "Empire", "Highway", "Frontier", "Mirror", "Station",
    "Island", "Winter", "Summer", "Storm", "Circus", "Orchard", "Lighthouse", "Canyon", "Desert", "Forest",
    "Valley", "Tide", "Signal", "Promise", "Letter", "Dream", "Heart", "Voyage", "Crown", "Ghost",
    "Stranger", "Witness", "Hunter", "Detective", "Wolf", "Raven", "Falcon", "Dragon", "Outlaw", "Pilot",
    "Sailor", "Prophet", "Engine", "Machine", "Planet", "Moon", "Road", "Bridge", "Tower", "Castle",
    "House", "Hotel", "Carnival", "Symphony", "Shadow", "Secret", "Orbit", "Ember", "Compass", "Lantern",
    "Mountain", "Ocean", "Diary", "Daughter",
)  # fmt: skip
PLACES = (
    "Avalon", "Brightwater", "Cold Creek", "Dunmore", "Eastwick", "Fairhaven", "Glenrock", "Hollow Pines",
    "Ironbridge", "Juniper Bay", "Kingsport", "Larkspur", "Marlow", "Northfield", "Oakridge", "Port Elena",
    "Quarry Hill", "Redwater", "Silverlake", "Thornbury", "Umberton", "Vale", "Westbrook", "Yellowstone Pass",
    "the North", "the Deep", "the Sun", "Tomorrow", "Nowhere", "the Stars", "the Old Town", "the Lost Coast",
)  # fmt: skip
TITLE_PATTERNS = (  # (template, word columns filling it, share)
    ("The {} {}", ("adjective", "noun"), 0.40),
    ("{} {}", ("adjective", "noun"), 0.15),
    ("{} of {}", ("noun", "place"), 0.20),
    ("The {} of the {} {}", ("noun", "adjective", "noun2"), 0.15),
    ("Escape from {}", ("place",), 0.05),
    ("Return to {}", ("place",), 0.05),
)

FIRST_YEAR, LAST_YEAR = 1950, 2024
YEAR_RECENCY_SCALE = 15.0  # release years decay exponentially into the past with this scale (years)
RATINGS_START = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
RATINGS_END = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
SECONDS_PER_YEAR = 365 * 24 * 3600
USER_WINDOW_SCALE = 0.25  # a user's active window is exponential with this share of the rating span as mean

LATENT_FACTORS = 16
GENRE_TASTE_WEIGHT = 1.0  # weight of genre taste next to the latent factors in the affinity
TASTE_SHARPNESS = 1.0  # how strongly affinity drives which items a user rates
POPULARITY_SIGMA = 2.0  # log-normal spread of item popularity (the long tail)
ACTIVITY_SIGMA = 1.0  # log-normal spread of ratings per user
QUALITY_SD, QUALITY_POPULARITY = 0.3, 0.5  # item quality spread and its link to popularity
USER_BIAS_SD = 0.4
RATING_NOISE_SD = 0.6
RATING_SHARES = (0.06, 0.11, 0.27, 0.34, 0.22)  # of ratings 1..5: mean ~3.55, 56 % above 3
MIN_RATINGS_PER_USER = 5
MAX_USER_SHARE = 0.5  # no user rates more than this share of the catalogue
CHUNK_CELLS = 1 << 22  # user x item scores held in memory at once while sampling


def generate_dataset(
    n_users: int = 1_000, n_items: int = 2_000, n_ratings: int = 100_000, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (catalog, ratings): exactly `n_ratings` ratings, every user with at least
    MIN_RATINGS_PER_USER and at most MAX_USER_SHARE of the items (ValueError if the sizes
    do not allow that); the same frames for the same arguments."""
    rng = np.random.default_rng(seed)
    genres = _item_genres(rng, n_items)
    years = _years(rng, n_items)
    log_popularity = POPULARITY_SIGMA * rng.standard_normal(n_items)
    quality = QUALITY_SD * rng.standard_normal(n_items) + QUALITY_POPULARITY * log_popularity / POPULARITY_SIGMA
    item_vectors = np.hstack([genres / genres.sum(1, keepdims=True), _latent(rng, n_items)])
    user_vectors = np.hstack([GENRE_TASTE_WEIGHT * rng.standard_normal((n_users, len(GENRES))), _latent(rng, n_users)])
    user_bias = USER_BIAS_SD * rng.standard_normal(n_users)

    counts = _ratings_per_user(rng, n_users, n_items, n_ratings)
    users, items, affinity = _sample_rated_items(rng, user_vectors, item_vectors, log_popularity, counts)
    scores = affinity + user_bias[users] + quality[items] + RATING_NOISE_SD * rng.standard_normal(len(users))
    ratings = pl.DataFrame(
        {
            "user_id": users.astype(np.int64) + 1,
            "item_id": items.astype(np.int64) + 1,
            "rating": _quantise(scores),
            "timestamp": _timestamps(rng, users, _release_times(rng, years)[items], n_users),
        }
    ).sort("user_id", "timestamp", "item_id")
    catalog = pl.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype=np.int64),
            "title": _titles(rng, years),
            "genres": _genre_lists(genres),
            "year": years.astype(np.int32),
        },
        schema={"item_id": pl.Int64, "title": pl.Utf8, "genres": pl.List(pl.Utf8), "year": pl.Int32},
    )
    return catalog, ratings


def write_dataset(directory: Path, **sizes: int) -> tuple[Path, Path]:
    """Generate the dataset (`generate_dataset` keyword arguments) and write `interactions.csv`
    and `catalog.csv` (genres joined with `|`) into `directory`; return both paths."""
    catalog, ratings = generate_dataset(**sizes)
    directory.mkdir(parents=True, exist_ok=True)
    interactions_path, catalog_path = directory / "interactions.csv", directory / "catalog.csv"
    ratings.select("user_id", "item_id", "rating", "timestamp").write_csv(interactions_path)
    catalog.select("item_id", "title", pl.col("genres").list.join("|")).write_csv(catalog_path)
    return interactions_path, catalog_path


def _latent(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latent factor vectors scaled so that dot products have unit variance."""
    return rng.standard_normal((n, LATENT_FACTORS)) / LATENT_FACTORS**0.25


def _item_genres(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Boolean item x genre membership: 1-3 distinct genres per item, common genres more often."""
    n_genres = rng.choice(len(GENRES_PER_ITEM_PROBS), size=n_items, p=GENRES_PER_ITEM_PROBS) + 1
    keys = np.log(GENRE_WEIGHTS) + rng.gumbel(size=(n_items, len(GENRES)))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return rank < n_genres[:, None]


def _genre_lists(genres: np.ndarray) -> pl.Series:
    """Genre names per item from the membership matrix, in GENRES order."""
    items, genre_index = np.nonzero(genres)
    names = pl.DataFrame({"item": items, "genre": np.array(GENRES)[genre_index]})
    return names.group_by("item", maintain_order=True).agg("genre").get_column("genre")


def _years(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Release years in FIRST_YEAR..LAST_YEAR, more recent ones more common."""
    age = np.floor(rng.exponential(YEAR_RECENCY_SCALE, n_items)).astype(np.int64)
    return LAST_YEAR - age % (LAST_YEAR - FIRST_YEAR + 1)


def _titles(rng: np.random.Generator, years: np.ndarray) -> pl.Series:
    """Unique movie-like titles ending with the year; repeated names become numbered sequels."""
    n = len(years)
    words = pl.DataFrame(
        {
            "pattern": rng.choice(len(TITLE_PATTERNS), size=n, p=[share for *_, share in TITLE_PATTERNS]),
            "adjective": np.array(ADJECTIVES)[rng.integers(len(ADJECTIVES), size=n)],
            "noun": np.array(NOUNS)[rng.integers(len(NOUNS), size=n)],
            "noun2": np.array(NOUNS)[rng.integers(len(NOUNS), size=n)],
            "place": np.array(PLACES)[rng.integers(len(PLACES), size=n)],
            "year": years,
        }
    )
    name = pl.lit(None, dtype=pl.Utf8)
    for index, (template, columns, _) in enumerate(TITLE_PATTERNS):
        name = pl.when(pl.col("pattern") == index).then(pl.format(template, *columns)).otherwise(name)
    sequel = pl.col("name").cum_count().over("name", "year")
    suffix = pl.when(sequel > 1).then(pl.format(" {}", sequel)).otherwise(pl.lit(""))
    titled = words.with_columns(name=name).select(title=pl.format("{}{} ({})", "name", suffix, "year"))
    return titled.get_column("title")


def _ratings_per_user(rng: np.random.Generator, n_users: int, n_items: int, n_ratings: int) -> np.ndarray:
    """Long-tail ratings per user summing to `n_ratings`, each in [MIN_RATINGS_PER_USER, cap]."""
    cap = int(MAX_USER_SHARE * n_items)
    if not MIN_RATINGS_PER_USER * n_users <= n_ratings <= cap * n_users:
        raise ValueError(
            f"n_ratings must lie in [{MIN_RATINGS_PER_USER * n_users}, {cap * n_users}] "
            f"for {n_users} users and {n_items} items, got {n_ratings}"
        )
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, n_users)
    counts = MIN_RATINGS_PER_USER + rng.multinomial(n_ratings - MIN_RATINGS_PER_USER * n_users, activity / activity.sum())
    while (excess := np.maximum(counts - cap, 0).sum()) > 0:  # hand the overflow of capped users to the others
        counts = np.minimum(counts, cap)
        open_activity = np.where(counts < cap, activity, 0.0)
        counts += rng.multinomial(excess, open_activity / open_activity.sum())
    return counts


def _sample_rated_items(
    rng: np.random.Generator,
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    log_popularity: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every user draw `counts[u]` distinct items with probability proportional to
    popularity x exp(TASTE_SHARPNESS x affinity) by Gumbel top-k, in batches of users of similar
    activity; return (user indices, item indices, affinities) of the draws."""
    n_items = len(item_vectors)
    items_t = (TASTE_SHARPNESS * item_vectors.T).astype(np.float32)
    log_pop = log_popularity.astype(np.float32)
    order = np.argsort(counts, kind="stable")
    batch = max(1, CHUNK_CELLS // n_items)
    keys_buffer = np.empty((batch, n_items), dtype=np.float32)  # reused: fresh pages are slow to fault in
    gumbel_buffer = np.empty_like(keys_buffer)
    users_out, items_out, affinity_out = [], [], []
    for start in range(0, len(order), batch):
        users = order[start : start + batch]
        k, keys, gumbel = counts[users], keys_buffer[: len(users)], gumbel_buffer[: len(users)]
        np.matmul(user_vectors[users].astype(np.float32), items_t, out=keys)
        keys += log_pop
        rng.standard_exponential(out=gumbel, dtype=np.float32)
        np.maximum(gumbel, np.finfo(np.float32).tiny, out=gumbel)  # float32 exponentials can be exactly 0
        keys -= np.log(gumbel, out=gumbel)
        first_top = n_items - k.max()
        top = np.argpartition(keys, first_top, axis=1)[:, first_top:]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        rows, ranks = np.nonzero(np.arange(top.shape[1]) < k[:, None])
        drawn_users, drawn_items = users[rows], top[rows, ranks]
        users_out.append(drawn_users)
        items_out.append(drawn_items)
        affinity_out.append(np.einsum("ij,ij->i", user_vectors[drawn_users], item_vectors[drawn_items]))
    return np.concatenate(users_out), np.concatenate(items_out), np.concatenate(affinity_out)


def _quantise(scores: np.ndarray) -> np.ndarray:
    """Ratings 1..5 cut from continuous scores at the quantiles of RATING_SHARES."""
    cuts = np.quantile(scores, np.cumsum(RATING_SHARES)[:-1])
    return np.searchsorted(cuts, scores).astype(np.int64) + 1


def _release_times(rng: np.random.Generator, years: np.ndarray) -> np.ndarray:
    """A unix release time within each item's year."""
    year_start = (years - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    return year_start + rng.integers(SECONDS_PER_YEAR, size=len(years))


def _timestamps(rng: np.random.Generator, users: np.ndarray, released: np.ndarray, n_users: int) -> np.ndarray:
    """Unix rating times inside each user's active window, never before the item's release."""
    span = RATINGS_END - RATINGS_START
    window_start = RATINGS_START + rng.random(n_users) * span
    window = np.minimum(rng.exponential(USER_WINDOW_SCALE * span, n_users), RATINGS_END - window_start)
    times = window_start[users] + rng.random(len(users)) * window[users]
    late = np.maximum(released, RATINGS_START)
    times = np.where(times < released, late + rng.random(len(users)) * (RATINGS_END - late), times)
    return times.astype(np.int64)
