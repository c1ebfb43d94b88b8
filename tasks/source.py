"""Sources: which files a `--data` path names, in which format and encoding — checked before anything
is read (regular files only, within a size bound). No Prefect here, so the CLI can check a path in
well under a second."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.errors import InputError

RATING_RANGE = (0.5, 5.0)
WEIGHT_RANGE = (0.0, 1e12)
INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")
FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
              stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}  # fmt: skip


@dataclass(frozen=True)
class InteractionsFile:
    path: Path
    delimiter: str
    header_lines: int
    columns: tuple[int, int, int, int]  # 1-based positions of user, item, rating, timestamp
    rating_range: tuple[float, float] = RATING_RANGE
    encoding: str = "utf-8"  # MovieLens 100k/1m files are latin-1 by their published format, the rest UTF-8

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix == ".parquet"


@dataclass(frozen=True)
class CatalogFile:
    path: Path
    splitter: str  # sql/ingest/split_catalog_<splitter>.sql
    header_lines: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Source:
    interactions: InteractionsFile
    catalog: CatalogFile | None


def regular_file(path: Path, what: str, max_bytes: int | None = None) -> Path:
    """`path` when it is a regular file (symlinks followed) within `max_bytes`; else a one-line InputError, before any read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise InputError(f"{what} {path} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        target = path.resolve()
        shown = f"{path} (-> {target})" if target != path.absolute() else str(path)
        kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
        raise InputError(f"{what} {shown} is {kind}; only regular files are read")
    if max_bytes is not None and info.st_size > max_bytes:
        raise InputError(f"{what} {path} has {info.st_size:,} bytes, more than RECS_MAX_INPUT_BYTES ({max_bytes:,})")
    return path


def detect_source(data: Path, catalog: Path | None = None, max_bytes: int | None = None) -> Source:
    """Recognise a MovieLens directory/file or a generic interactions file (regular files only)."""
    if not data.exists():
        raise InputError(f"data source {data} does not exist")
    if data.is_dir():
        for name in ("u.data", "ratings.dat", "ratings.csv"):
            if (data / name).exists():
                return detect_source(data / name, catalog, max_bytes)
        raise InputError(f"{data} holds no u.data, ratings.dat or ratings.csv")
    regular_file(data, "data source", max_bytes)
    if data.name == "u.data":
        genres = _ml100k_genres(data.parent / "u.genre", max_bytes)
        item = data.parent / "u.item"
        return Source(
            InteractionsFile(data, "\t", 0, (1, 2, 3, 4), encoding="latin-1"),
            CatalogFile(regular_file(item, "catalogue", max_bytes), "ml100k", params={"genre_names": genres}, encoding="latin-1")
            if item.exists() else None,
        )  # fmt: skip
    if data.name == "ratings.dat":
        movies = data.parent / "movies.dat"
        encoding = "latin-1" if (data.parent / "users.dat").exists() else "utf-8"  # 1m (has users.dat) vs 10m
        return Source(
            InteractionsFile(data, "::", 0, (1, 2, 3, 4), encoding=encoding),
            CatalogFile(regular_file(movies, "catalogue", max_bytes), "delimited", params={"delimiter": "::"}, encoding=encoding)
            if movies.exists() else None,
        )  # fmt: skip
    if data.suffix == ".csv":
        interactions = _generic_csv(data)
        movies = data.parent / "movies.csv"
        if catalog is None and data.name == "ratings.csv" and movies.exists():
            catalog = movies
        return Source(interactions, _catalog_file(catalog, max_bytes))
    if data.suffix == ".parquet":
        return Source(InteractionsFile(data, "", 0, (1, 2, 3, 4), _parquet_rating_range(data)), _catalog_file(catalog, max_bytes))
    raise InputError(f"{data}: unsupported file type (expected a MovieLens file, .csv or .parquet)")


def _ml100k_genres(path: Path, max_bytes: int | None) -> list[str]:
    lines = regular_file(path, "genre list", max_bytes).read_text(encoding="latin-1").splitlines() if path.exists() else []
    return [line.split("|")[0] for line in lines if "|" in line]


def header_names(path: Path) -> list[str]:
    """The first line's comma-separated names (a UTF-8 BOM before it is dropped)."""
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        return [h.strip().strip('"').lower() for h in f.readline().strip().split(",")]


def _generic_csv(path: Path) -> InteractionsFile:
    """Columns by header name; `userId,movieId` (MovieLens 20m+) and `weight` accepted."""
    header = header_names(path)
    aliases = {"userid": "user_id", "movieid": "item_id", "weight": "rating"}
    names = [aliases.get(h, h) for h in header]
    missing = [name for name in INTERACTION_FIELDS if name not in names]
    if missing:
        raise InputError(f"{path}: header {header} lacks {missing} (expected user_id,item_id,rating|weight,timestamp)")
    columns = tuple(names.index(name) + 1 for name in INTERACTION_FIELDS)
    return InteractionsFile(path, ",", 1, columns, WEIGHT_RANGE if "weight" in header else RATING_RANGE)  # type: ignore[arg-type]


def _parquet_rating_range(path: Path) -> tuple[float, float]:
    import duckdb  # only Parquet sources need it: a path check stays light

    from tasks.db import run

    with duckdb.connect() as con:
        names = {name for (name,) in run(con, "ingest/parquet_columns", {"path": str(path)})}
    missing = {"user_id", "item_id", "timestamp"} - names
    if missing or not names & {"rating", "weight"}:
        raise InputError(f"{path}: columns {sorted(names)} lack user_id, item_id, rating|weight, timestamp")
    return RATING_RANGE if "rating" in names else WEIGHT_RANGE


def _catalog_file(path: Path | None, max_bytes: int | None) -> CatalogFile | None:
    if path is None:
        return None
    if not path.exists():
        raise InputError(f"catalogue {path} does not exist")
    if path.suffix != ".csv":
        raise InputError(f"{path}: the catalogue must be a CSV with header item_id,title,genres")
    return CatalogFile(regular_file(path, "catalogue", max_bytes), "csv", header_lines=1)
