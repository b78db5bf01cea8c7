"""Turn the command line's PATH arguments into a list of source files to load."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

SYMBOLS_FILE_NAME = "symbols_valid_meta.csv"
CSV_SUFFIXES = (".csv", ".csv.gz")
ASSET_TYPE_BY_FOLDER = {"stocks": "stock", "etfs": "etf"}


class FileKind(StrEnum):
    PRICES = "prices"
    SYMBOLS = "symbols"


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: FileKind
    symbol: str | None = None
    asset_type: str | None = None  # from the folder; None leaves it to the symbols metadata

    @property
    def source_key(self) -> str:
        """What a later load of the same data replaces: one series per symbol, one metadata table."""
        return f"prices/{self.symbol}" if self.kind is FileKind.PRICES else "symbols_meta"


class DiscoveryError(Exception):
    """The arguments name nothing loadable; the message says what to do."""


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(CSV_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _describe_file(path: Path, symbol: str | None, asset_type: str | None) -> SourceFile:
    if _stem(path).lower() == _stem(Path(SYMBOLS_FILE_NAME)).lower():
        return SourceFile(path=path, kind=FileKind.SYMBOLS)
    folder_type = ASSET_TYPE_BY_FOLDER.get(path.parent.name.lower())
    return SourceFile(
        path=path,
        kind=FileKind.PRICES,
        symbol=symbol or _stem(path),
        asset_type=asset_type or folder_type,
    )


def _csv_files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_csv(p))


def _expand_directory(folder: Path, asset_type: str | None) -> list[SourceFile]:
    subfolders = [folder / name for name in ASSET_TYPE_BY_FOLDER if (folder / name).is_dir()]
    paths = _csv_files_in(folder)
    for sub in subfolders:  # the Kaggle layout: stocks/ and etfs/ beside the metadata file
        paths.extend(_csv_files_in(sub))
    if not paths:
        raise DiscoveryError(
            f"{folder}: no .csv or .csv.gz files here (nor in stocks/ or etfs/). "
            "Pass the dataset folder or the CSV files themselves."
        )
    return [_describe_file(p, None, asset_type) for p in paths]


def discover(paths: list[str], symbol: str | None = None, asset_type: str | None = None) -> list[SourceFile]:
    """Expand PATH arguments into source files; every problem is a DiscoveryError with a clear message."""
    sources: list[SourceFile] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            sources.extend(_expand_directory(path, asset_type))
        elif path.is_file():
            sources.append(_describe_file(path, symbol, asset_type))
        elif path.exists():
            raise DiscoveryError(f"{path}: not a regular file or directory.")
        else:
            raise DiscoveryError(f"{path}: no such file or directory.")

    unique: dict[Path, SourceFile] = {}
    for source in sources:
        unique.setdefault(source.path.resolve(), source)
    sources = list(unique.values())

    price_files = [s for s in sources if s.kind is FileKind.PRICES]
    if symbol is not None and len(price_files) != 1:
        raise DiscoveryError(
            f"--symbol names the symbol of one price file, but {len(price_files)} were given."
        )
    by_key: dict[str, SourceFile] = {}
    for source in sources:
        other = by_key.setdefault(source.source_key, source)
        if other is not source:
            raise DiscoveryError(
                f"{other.path} and {source.path} both hold {source.source_key}; a later load of a "
                "symbol replaces the earlier one, so load them in separate runs (or use --symbol)."
            )
    return sources
