"""Ingest: read customers and specialists from files or tables, validate them once, at the door.

Customers
    A bad customer row (bad coordinate, bad workload, conflicting duplicate id …) is
    not an error: it goes to the rejects table with its source ``row`` and a ``reason``,
    so every input row ends up either in the valid table or in rejects (DESIGN.md
    invariant 1). Only problems with the file as a whole raise :class:`InputError`:
    unreadable, empty, a required column missing, or more than
    ``InputConfig.max_reject_share`` of the rows rejected.
Specialists
    The roster is small and every row matters for staffing, so any bad specialist row
    raises :class:`InputError` naming the file, row and column.

Rows are numbered from 1 for the first data row (the header is not counted), the
way a planner counts records; in a spreadsheet, row N sits on line N + 1.

Excel and header names
    ``.xlsx`` files are read through python-calamine (the first sheet, or
    ``input.sheet``). Common Chinese and English header names are recognised for every
    column (客户编号 → ``customer_id``, 纬度 → ``lat``, 产能 → ``capacity`` …, see
    :data:`HEADER_ALIASES`), and ``input.columns`` (``--columns customer_id=保单号,lat=Y坐标``)
    maps any other header; :func:`column_mapping` tells which mapping a file was read with.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import InputConfig
from .errors import InputError

__all__ = ["HEADER_ALIASES", "column_mapping", "parse_column_map", "read_table", "read_header", "read_customers", "read_specialists", "read_service_area", "read_geometry", "read_zones", "Zones", "ZONE_NAME_COLUMNS", "validate_customers", "validate_specialists", "file_sha256", "REJECT_COLUMNS", "pii_columns", "read_customer_pii", "CityTables", "read_city", "BARRIER_KINDS"]

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ["customer_id", "row", "reason"]
_TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
_PARQUET_SUFFIXES = {".parquet", ".pq", ".geoparquet"}
_GEO_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp"}
_EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}

#: Header names recognised for each column, per input kind (compared without case, spaces,
#: underscores, hyphens and full-width brackets). A column already named as gridengine names
#: it is never renamed.
HEADER_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "customer_id": ("客户编号", "客户号", "客户ID", "客户代码", "客户编码", "客户id", "customerid", "custid",
                        "clientid"),
        "lat": ("纬度", "latitude", "lat", "y坐标", "纬度wgs84", "纬度gcj02"),
        "lon": ("经度", "longitude", "lng", "long", "lon", "x坐标", "经度wgs84", "经度gcj02"),
        "address": ("地址", "详细地址", "客户地址", "联系地址", "居住地址", "addr", "address"),
        "workload": ("工作量", "权重", "工作负荷", "服务量", "weight", "load", "workload"),
        "district": ("区", "区县", "行政区", "所属区", "所属区县", "district"),
    },
    "specialists": {
        "specialist_id": ("专员编号", "工号", "员工编号", "专员ID", "专员工号", "员工号", "专员id", "staffid",
                          "employeeid", "specialistid"),
        "lat": ("纬度", "latitude", "lat", "y坐标", "驻点纬度", "基地纬度"),
        "lon": ("经度", "longitude", "lng", "long", "lon", "x坐标", "驻点经度", "基地经度"),
        "capacity": ("产能", "容量", "上限", "服务上限", "产能上限", "cap", "capacity"),
        "current_grid": ("当前网格", "现网格", "网格编号", "所属网格", "currentgrid", "grid", "gridid"),
    },
    "locked": {
        "cell": ("单元", "h3", "h3cell", "cell"),
        "grid_id": ("网格编号", "网格", "grid", "gridid"),
        "specialist_id": ("专员编号", "工号", "员工编号", "specialistid"),
    },
}


def _header_key(name: str) -> str:
    """A header name compared loosely: lower case, without spaces, underscores, hyphens, dots or brackets."""
    import re

    return re.sub(r"[\s_\-.()（）\[\]【】]", "", str(name).strip().lstrip("\ufeff")).lower()


def parse_column_map(spec: str | dict[str, str] | None, *, source: str = "--columns") -> dict[str, str]:
    """``"customer_id=保单号,lat=Y坐标"`` (or a dict) as ``{gridengine column: file column}``.

    Raises
    ------
    InputError
        An item without ``=`` or with an empty side.
    """
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {str(k).strip(): str(v).strip() for k, v in spec.items()}
    out: dict[str, str] = {}
    for item in str(spec).replace("，", ",").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise InputError(f"{source}: {item.strip()!r} is not COLUMN=HEADER (e.g. customer_id=保单号)", field=item.strip())
        ours, theirs = (x.strip() for x in item.split("=", 1))
        if not ours or not theirs:
            raise InputError(f"{source}: {item.strip()!r} is not COLUMN=HEADER (e.g. customer_id=保单号)", field=item.strip())
        out[ours] = theirs
    return out


def column_mapping(columns, kind: str, extra: str | dict[str, str] | None = None) -> dict[str, str]:
    """Which file column is read as which gridengine column: ``{file header: gridengine column}``.

    Parameters
    ----------
    columns
        The file's header names.
    kind
        ``"customers"``, ``"specialists"`` or ``"locked"`` (the alias table of :data:`HEADER_ALIASES`).
    extra
        The planner's mapping (``input.columns`` / ``--columns``), applied first; entries naming
        a column this file does not have are ignored (one mapping may serve several files).

    Returns
    -------
    dict
        Only the columns renamed; a column already named as gridengine names it is kept.
    """
    cols = [str(c).strip().lstrip("\ufeff") for c in columns]
    have = set(cols)
    mapping: dict[str, str] = {}
    for ours, theirs in parse_column_map(extra).items():
        if theirs in have and theirs != ours:
            mapping[theirs] = ours
    taken = set(mapping.values()) | {c for c in cols if c not in mapping}
    keyed: dict[str, list[str]] = {}
    for c in cols:
        if c not in mapping:
            keyed.setdefault(_header_key(c), []).append(c)
    for ours, names in HEADER_ALIASES.get(kind, {}).items():
        if ours in taken:
            continue
        for alias in names:
            found = keyed.get(_header_key(alias), [])
            found = [c for c in found if c not in mapping and c != ours]
            if len(found) == 1:
                mapping[found[0]] = ours
                taken.add(ours)
                break
    return mapping


def apply_mapping(df: pd.DataFrame, kind: str, extra: str | dict[str, str] | None, source: str) -> pd.DataFrame:
    """Rename the recognised headers (logged), after :func:`normalise_columns`."""
    mapping = column_mapping(df.columns, kind, extra)
    if not mapping:
        return df
    logger.info("ingest: %s: columns read as %s", source, ", ".join(f"{a} → {b}" for a, b in mapping.items()))
    df = df.rename(columns=mapping)
    df.attrs["column_mapping"] = dict(mapping)
    return normalise_columns(df, source)


def _sheet_rows(path: Path, sheet: str) -> tuple[list[list], int]:
    """The rows of one worksheet (python-calamine): by name, by number from 1, or the first; and the
    sheet row number (from 1) of the first row returned (leading empty rows are not returned)."""
    try:
        from python_calamine import CalamineWorkbook
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError(f"{path}: reading Excel files needs python-calamine (pip install python-calamine)",
                         path=str(path)) from None
    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for broken files
        raise InputError(f"{path}: not a readable Excel workbook ({exc})", path=str(path)) from None
    names = list(wb.sheet_names)
    if not names:
        raise InputError(f"{path}: the workbook has no sheets", path=str(path))
    if sheet == "":
        name = names[0]
    elif sheet in names:
        name = sheet
    elif sheet.isdigit() and 1 <= int(sheet) <= len(names):
        name = names[int(sheet) - 1]
    else:
        raise InputError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(names)})", path=str(path), field=sheet)
    ws = wb.get_sheet_by_name(name)
    start = ws.start
    return ws.to_python(skip_empty_area=True), (int(start[0]) + 1 if start else 1)


def _read_excel(path: Path, sheet: str = "", *, keep_blank_rows: bool = False) -> pd.DataFrame:
    """An Excel sheet as a table: the first non-empty row is the header; text stays text, numbers numbers.

    With ``keep_blank_rows``, empty rows below the header stay (as rows of blanks), and
    ``attrs["first_row"]`` is the sheet row number of the first data row."""
    rows, first = _sheet_rows(path, sheet)
    filled = [any(v not in ("", None) for v in r) for r in rows]
    if not any(filled):
        raise InputError(f"{path}: the sheet is empty", path=str(path))
    head = filled.index(True)
    first += head + 1
    rows = rows[head:] if keep_blank_rows else [r for r, f in zip(rows, filled) if f]
    header = [str(v).strip() if v is not None else "" for v in rows[0]]
    while header and header[-1] == "":
        header.pop()
    if any(h == "" for h in header):
        col = header.index("") + 1
        raise InputError(f"{path}: column {col} of the header row is empty", path=str(path))
    body = rows[1:]
    n = len(header)
    data = {}
    for j, h in enumerate(header):
        data[h] = pd.Series([r[j] if j < len(r) else "" for r in body], dtype=object)
    for j, h in enumerate(header):
        vals = data[h]
        # a column of numbers only (blank cells aside) becomes float64: as a CSV column of numbers would parse
        if len(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool) or v == "" or v is None
                             for v in vals.tolist()):
            data[h] = pd.to_numeric(vals.replace("", np.nan), errors="coerce").astype("float64")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise InputError(f"{path}: column {h!r} appears more than once in the header", path=str(path), field=h)
        seen.add(h)
    df = pd.DataFrame(data, columns=header[:n])
    if keep_blank_rows:
        df.attrs["first_row"] = first
    return df


def read_header(path: str | Path, *, encoding: str = "auto", sheet: str = "") -> list[str]:
    """The column names of a tabular input, read without its rows where the format allows.

    Raises
    ------
    InputError
        As :func:`read_table`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in _PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.read_schema(path).names]
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})", path=str(path)) from None
    if path.is_file() and (suffix in _TEXT_SUFFIXES or suffix == "") and not _is_zip_workbook(path):
        import csv
        import io

        enc = _detect_encoding(path, encoding)
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).decode(enc, errors="ignore")
        sep = _sniff_delimiter(head)
        row = next(csv.reader(io.StringIO(head.lstrip("\ufeff")), delimiter=sep, skipinitialspace=True), [])
        return [h.strip() for h in row]
    return [str(c) for c in read_raw(path, encoding, sheet=sheet).columns]


def read_table(path: str | Path, *, encoding: str = "auto", sheet: str = "") -> pd.DataFrame:
    """Read any tabular input (CSV, Excel, Parquet, GeoParquet, GeoJSON, GeoPackage) as it is written.

    Parameters
    ----------
    path
        The file.
    encoding
        Text encoding of a CSV (``"auto"``: UTF-8, then GB18030).
    sheet
        The worksheet of an Excel file: name or number from 1 (``""``: the first).

    Raises
    ------
    InputError
        Missing, unreadable or empty file (the path named).
    """
    return read_raw(Path(path), encoding, sheet=sheet)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex (recorded in the manifest, never the contents)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def table_sha256(df: pd.DataFrame) -> str:
    """A content hash of an in-memory table (column names, order and values)."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    if len(df):
        h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


_CHUNK = 1 << 24  # 16 MB: the encoding check streams the file, never holding it whole
_CSV_CHUNK_ROWS = 1 << 18  # rows per parser chunk (bounds the peak memory of a large CSV)


def _decode_error(path: Path, encoding: str) -> tuple[str, int] | None:
    """``(reason, byte offset)`` of the first byte that is not valid ``encoding``, or None.

    Streams the file through an incremental decoder, so a large file is never held in
    memory as bytes and as text at once. Raises LookupError for an unknown encoding.
    """
    import codecs

    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:  # exc.object: bytes pending from the last chunk + this chunk
                return exc.reason, offset - (len(exc.object) - len(chunk)) + exc.start
            if not chunk:
                return None
            offset += len(chunk)


def _detect_encoding(path: Path, encoding: str) -> str:
    """The encoding to read a text file with: as given, or (``auto``) UTF-8 (BOM or not), then GB18030."""
    if encoding != "auto":
        try:
            err = _decode_error(path, encoding)
        except LookupError:
            raise InputError(f"{path}: cannot decode as {encoding}: unknown encoding", path=str(path)) from None
        if err is not None:
            raise InputError(f"{path}: cannot decode as {encoding}: {err[0]} at byte {err[1]}", path=str(path))
        return encoding
    utf8_error = _decode_error(path, "utf-8-sig")
    if utf8_error is None:
        return "utf-8-sig"
    if _decode_error(path, "gb18030") is not None:
        raise InputError(
            f"{path}: not UTF-8 ({utf8_error[0]} at byte {utf8_error[1]}) and not GB18030/GBK; "
            "give the encoding with --encoding",
            path=str(path),
        )
    logger.info("%s: not UTF-8, read as GB18030 (GBK)", path)
    return "gb18030"


def _sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def _parser_error(exc: Exception, path: Path) -> InputError:
    """A tokenizer error in gridengine's terms: the data row (header not counted) where pandas gives a line."""
    import re

    msg = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        want, line, got = (int(g) for g in m.groups())
        return InputError(
            f"{path}: row {line - 1}: {got} fields where the header has {want} (a stray delimiter, or a value "
            "holding the delimiter without quotes?)", path=str(path), row=line - 1)
    return InputError(f"{path}: cannot parse as delimited text: {msg}", path=str(path))


def _check_header(text: str, sep: str, path: Path) -> None:
    """A repeated column name is an error (pandas would silently rename the second one to 'name.1')."""
    import csv
    import io

    try:
        header = next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep, skipinitialspace=True), [])
    except csv.Error:
        return
    seen: set[str] = set()
    for name in (h.strip() for h in header):
        if name in seen and name:
            raise InputError(f"{path}: column {name!r} appears more than once in the header", path=str(path), field=name)
        seen.add(name)


def read_raw(path: Path, encoding: str, *, sheet: str = "", keep_blank_rows: bool = False) -> pd.DataFrame:
    """Read a file into a DataFrame; CSV cells stay strings so validation sees what was written.

    With ``keep_blank_rows`` (CSV and Excel), blank rows below the header stay as rows of blanks, so
    that row positions are those a spreadsheet shows; an Excel table's ``attrs["first_row"]`` is then
    the sheet row of its first data row (a CSV's is 2)."""
    if not path.exists():
        raise InputError(f"{path}: file not found", path=str(path))
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file", path=str(path))
    suffix = path.suffix.lower()
    if suffix in _EXCEL_SUFFIXES or _is_zip_workbook(path):
        return _read_excel(path, sheet, keep_blank_rows=keep_blank_rows)
    if suffix in _PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise InputError(f"{path}: not a readable Parquet file ({exc})", path=str(path)) from None
        try:
            df = table.to_pandas()
        except Exception as exc:  # column types pandas cannot hold
            raise InputError(f"{path}: Parquet columns cannot be read as a table ({exc})", path=str(path)) from None
        if "geometry" in df.columns and ("lat" not in df.columns or "lon" not in df.columns):
            df = _points_to_latlon(df, path, geo=False)
        return df
    if suffix in _GEO_SUFFIXES:
        import geopandas as gpd

        try:
            gdf = gpd.read_file(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable vector file ({exc})", path=str(path)) from None
        return _points_to_latlon(gdf, path, geo=True)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        if not head.strip() and not fh.read(1):
            raise InputError(f"{path}: file is empty", path=str(path))
    enc = _detect_encoding(path, encoding)
    # the header decides the delimiter (a character cut at the 64 kB mark is ignored)
    head_text = head.decode(enc, errors="ignore")
    sep = _sniff_delimiter(head_text)
    _check_header(head_text, sep, path)
    try:
        # pandas' C parser streams the file (no second copy of the text in memory), in chunks so
        # only one chunk at a time exists as Python strings before becoming compact string columns
        chunks = pd.read_csv(
            path, sep=sep, encoding=enc, dtype=str, keep_default_na=False, na_filter=False,
            skipinitialspace=True, chunksize=_CSV_CHUNK_ROWS, skip_blank_lines=not keep_blank_rows,
        )
        parts = list(chunks)
        df = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    except pd.errors.ParserError as exc:
        raise _parser_error(exc, path) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty", path=str(path)) from None
    except (UnicodeDecodeError, LookupError) as exc:  # checked above; kept for safety
        raise InputError(f"{path}: cannot decode as {enc}: {exc}", path=str(path)) from None
    return df


def _is_zip_workbook(path: Path) -> bool:
    """An Excel workbook under another name (a ZIP file holding ``xl/workbook.xml``)."""
    import zipfile

    if path.suffix.lower() not in _TEXT_SUFFIXES and path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _points_to_latlon(df: pd.DataFrame, path: Path, *, geo: bool) -> pd.DataFrame:
    import geopandas as gpd
    import shapely

    if geo:
        gdf = df
    else:
        try:
            gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries.from_wkb(df["geometry"]), crs="EPSG:4326")
        except Exception as exc:
            raise InputError(f"{path}: column 'geometry' is not WKB points ({exc})", path=str(path), field="geometry") from None
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    geom = gdf.geometry.to_numpy()
    kinds = shapely.get_type_id(geom)
    bad = np.flatnonzero((kinds != 0) & ~shapely.is_missing(geom))
    if len(bad):
        raise InputError(
            f"{path}: row {bad[0] + 1}: column 'geometry' must be a Point, got {shapely.get_type_id(geom[bad[0]])}",
            path=str(path), row=int(bad[0]) + 1, field="geometry",
        )
    out = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    out["lat"] = shapely.get_y(geom)
    out["lon"] = shapely.get_x(geom)
    return out


def normalise_columns(df: pd.DataFrame, path: str) -> pd.DataFrame:
    """The table with stripped header names (a byte-order mark removed); a repeated name is an InputError."""
    cols = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    seen: dict[str, int] = {}
    for c in cols:
        seen[c] = seen.get(c, 0) + 1
    dup = [c for c, n in seen.items() if n > 1]
    if dup:
        raise InputError(f"{path}: column {dup[0]!r} appears more than once in the header", path=path, field=dup[0])
    df = df.copy(deep=False)  # new labels, same data (copy-on-write): a 5M-row table is not held twice
    df.columns = cols
    return df


def require_columns(df: pd.DataFrame, required: list[str], path: str) -> None:
    """Raise an InputError naming the first required column the table lacks (and the nearest header)."""
    for col in required:
        if col not in df.columns:
            near = difflib.get_close_matches(col, list(map(str, df.columns)), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            have = ", ".join(map(str, df.columns[:12]))
            raise InputError(
                f"{path}: required column {col!r} is missing{hint} (columns found: {have})",
                path=path, field=col,
            )


def as_text(s: pd.Series) -> pd.Series:
    """Values as stripped strings, missing values as ''."""
    if isinstance(s.dtype, pd.StringDtype):  # CSV columns: vectorised, no Python object per cell
        return s.fillna("").str.strip()
    out = s.astype(object).where(s.notna(), "")
    return out.map(lambda v: v if isinstance(v, str) else (str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v))).str.strip()


def parse_numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a column to float64. Returns values, is_empty and is_unparseable masks."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        empty = np.isnan(vals)
        return vals, empty, np.zeros(len(s), dtype=bool)
    text = as_text(s)
    empty = (text == "").to_numpy()
    vals = pd.to_numeric(text.where(~empty, None), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(vals) & ~empty & ~text.str.lower().isin(["nan"]).to_numpy()
    empty = empty | (np.isnan(vals) & ~bad)
    return vals, empty, bad


@dataclass
class _Reasons:
    """First reason per row (vectorised bookkeeping)."""

    n: int

    def __post_init__(self) -> None:
        self.reason = np.full(self.n, None, dtype=object)

    def add(self, mask: np.ndarray, reasons: np.ndarray | str) -> None:
        take = mask & (self.reason == None)  # noqa: E711  (object array comparison)
        if isinstance(reasons, str):
            self.reason[take] = reasons
        else:
            self.reason[take] = np.asarray(reasons, dtype=object)[take]

    @property
    def bad(self) -> np.ndarray:
        return self.reason != None  # noqa: E711


def _fmt_values(template: str, values, mask: np.ndarray) -> np.ndarray:
    """``template.format(value)`` for the rows in ``mask`` (None elsewhere): only bad rows pay for a message."""
    out = np.full(len(mask), None, dtype=object)
    idx = np.flatnonzero(mask)
    if len(idx):
        vals = np.asarray(values, dtype=object)[idx]
        out[idx] = [template.format(str(v)) for v in vals]
    return out


def _check_coordinates(df: pd.DataFrame, reasons: _Reasons, *, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat, lat_empty, lat_bad = parse_numeric(df["lat"])
    lon, lon_empty, lon_bad = parse_numeric(df["lon"])
    raw_lat = as_text(df["lat"]) if lat_bad.any() else None
    raw_lon = as_text(df["lon"]) if lon_bad.any() else None
    if raw_lat is not None:
        reasons.add(lat_bad, _fmt_values("column 'lat': value {!r} is not a number", raw_lat, lat_bad))
    if raw_lon is not None:
        reasons.add(lon_bad, _fmt_values("column 'lon': value {!r} is not a number", raw_lon, lon_bad))
    reasons.add(lat_empty & needed, "column 'lat': empty or NaN")
    reasons.add(lon_empty & needed, "column 'lon': empty or NaN")
    with np.errstate(invalid="ignore"):
        inf = ~np.isfinite(lat) & ~np.isnan(lat) | ~np.isfinite(lon) & ~np.isnan(lon)
        reasons.add(inf, "coordinates are infinite")
        swapped = (np.abs(lat) > 90) & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
        reasons.add(swapped, "column 'lat' is outside [-90, 90] but 'lon' would fit: lat and lon look swapped")
        reasons.add(np.abs(lat) > 90, _fmt_values("column 'lat': value {} is outside [-90, 90]", lat, np.abs(lat) > 90))
        reasons.add(np.abs(lon) > 180, _fmt_values("column 'lon': value {} is outside [-180, 180]", lon, np.abs(lon) > 180))
        reasons.add((lat == 0) & (lon == 0), "coordinates (0, 0) are a placeholder, not a location")
    return lat, lon


def _far_from_centre(lat: np.ndarray, lon: np.ndarray, ok: np.ndarray, max_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each point from the median of the valid points, in km."""
    if not ok.any():
        return np.zeros(len(lat), dtype=bool), np.zeros(len(lat))
    lat0 = float(np.median(lat[ok]))
    lon0 = float(np.median(lon[ok]))
    from .cells import haversine_km

    with np.errstate(invalid="ignore"):
        d = haversine_km(lat, lon, lat0, lon0)
        return ok & (d > max_km), d


def validate_customers(
    df: pd.DataFrame, *, config: InputConfig = InputConfig(), source: str = "customers"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a raw customers table.

    Parameters
    ----------
    df
        Raw table: ``customer_id`` and ``lat``/``lon`` (or ``address``), optional ``workload``
        and any other columns (carried through).
    config
        Input settings (reject threshold, distance limit).
    source
        Name used in messages (the file path).

    Returns
    -------
    customers
        Valid rows: ``customer_id`` (str), ``lat``, ``lon`` (float, as given; NaN where only an
        ``address`` is known), ``workload`` (float, default 1.0), ``row`` (int, 1-based source row),
        then the other input columns.
    rejects
        ``customer_id``, ``row``, ``reason`` for every rejected row.

    Raises
    ------
    InputError
        Missing required column, no data rows, or too many rejected rows.
    """
    df = apply_mapping(normalise_columns(df, source), "customers", config.columns, source)
    require_columns(df, ["customer_id"], source)
    has_address = "address" in df.columns
    if not has_address:
        require_columns(df, ["lat", "lon"], source)
    elif ("lat" in df.columns) != ("lon" in df.columns):
        require_columns(df, ["lat", "lon"], source)
    n = len(df)
    if n == 0:
        raise InputError(f"{source}: no data rows (header only)", path=source)
    reasons = _Reasons(n)
    ids = as_text(df["customer_id"])
    reasons.add((ids == "").to_numpy(), "column 'customer_id': empty")
    address = as_text(df["address"]) if has_address else pd.Series([""] * n)
    has_addr = (address != "").to_numpy()
    if "lat" in df.columns:
        lat, lon = _check_coordinates(df, reasons, needed=~has_addr)
    else:
        lat = np.full(n, np.nan)
        lon = np.full(n, np.nan)
    no_location = np.isnan(lat) & np.isnan(lon) & ~has_addr
    reasons.add(no_location, "no coordinates and no address")
    if "workload" in df.columns:
        w, w_empty, w_bad = parse_numeric(df["workload"])
        if w_bad.any():
            reasons.add(w_bad, _fmt_values("column 'workload': value {!r} is not a number", as_text(df["workload"]), w_bad))
        reasons.add(w_empty, "column 'workload': empty or NaN")
        with np.errstate(invalid="ignore"):
            reasons.add(~np.isfinite(w) & ~np.isnan(w), "column 'workload': infinite")
            reasons.add(w < 0, _fmt_values("column 'workload': value {} is negative", w, w < 0))
    else:
        w = np.ones(n)
    # Far outliers: judged against the median of rows that are otherwise fine.
    has_xy = ~np.isnan(lat) & ~np.isnan(lon) & ~reasons.bad
    far, dist = _far_from_centre(lat, lon, has_xy, config.max_distance_km)
    if far.any():
        reasons.add(far, _fmt_values(
            "coordinates are {} km from the city's median location (limit input.max_distance_km = "
            + f"{config.max_distance_km:g})", np.round(dist, 1), far))
    # Duplicate ids among rows: identical duplicates keep the first, conflicting ones reject all.
    rows = np.arange(1, n + 1)
    dup_mask = ids.duplicated(keep=False).to_numpy() & (ids != "").to_numpy()
    if dup_mask.any():
        sub = df.loc[dup_mask].astype(object).map(str)  # str(), not astype(str): bytes values must not be decoded
        sub_ids = ids[dup_mask]
        content = pd.util.hash_pandas_object(sub, index=False)
        groups = pd.DataFrame({"id": sub_ids.to_numpy(), "h": content.to_numpy(), "row": rows[dup_mask]})
        first_row = groups.groupby("id", sort=False)["row"].transform("min").to_numpy()
        n_variants = groups.groupby("id", sort=False)["h"].transform("nunique").to_numpy()
        row_lists = groups.groupby("id", sort=False)["row"].transform(lambda r: ", ".join(map(str, r))).to_numpy()
        msg = np.empty(len(groups), dtype=object)
        for i in range(len(groups)):
            if n_variants[i] > 1:
                msg[i] = f"customer_id {groups['id'].iat[i]!r} appears in rows {row_lists[i]} with different data"
            elif groups["row"].iat[i] != first_row[i]:
                msg[i] = f"duplicate of row {first_row[i]} (customer_id {groups['id'].iat[i]!r})"
            else:
                msg[i] = None
        full = np.full(n, None, dtype=object)
        full[np.flatnonzero(dup_mask)] = msg
        reasons.add(full != None, full)  # noqa: E711
    bad = reasons.bad
    rejects = pd.DataFrame({
        "customer_id": ids[bad].to_numpy(dtype=object),
        "row": rows[bad],
        "reason": reasons.reason[bad].astype(str),
    })
    share = bad.mean()
    if share > config.max_reject_share:
        top = rejects["reason"].str.replace(r"value .*? is", "value … is", regex=True).value_counts()
        first = rejects.iloc[0]
        named = str(first["reason"]).split("'")
        field = named[1] if str(first["reason"]).startswith("column '") and len(named) > 2 else None
        most = f"most common: {top.index[0]} ({top.iloc[0]} rows)"
        if top.index[0].endswith("lat and lon look swapped") and top.iloc[0] > n / 2:
            field = "lat"
            most = (f"columns 'lat' and 'lon' look swapped ({top.iloc[0]} rows have a 'lat' outside [-90, 90] "
                    "that fits as a longitude): swap the two column names in the header")
        raise InputError(
            f"{source}: {bad.sum()} of {n} rows ({share:.0%}) rejected, above input.max_reject_share "
            f"= {config.max_reject_share:g}; {most}; first at row {first['row']}: {first['reason']}",
            path=source, row=int(first["row"]), field=field,
        )
    keep = ~bad
    out = pd.DataFrame({
        "customer_id": ids.array[keep] if isinstance(ids.dtype, pd.StringDtype) else ids[keep].to_numpy(dtype=object),
        "lat": lat[keep],
        "lon": lon[keep],
        "workload": w[keep].astype("float64"),
        "row": rows[keep],
    })
    extra = [c for c in df.columns if c not in ("customer_id", "lat", "lon", "workload", "row")]
    for c in extra:
        col = df[c]
        out[c] = col.array[keep] if isinstance(col.dtype, pd.StringDtype) else col.to_numpy()[keep]
    out["customer_id"] = out["customer_id"].astype(str)
    logger.info("ingest: %s: %d rows, %d valid, %d rejected", source, n, keep.sum(), bad.sum())
    return out.reset_index(drop=True), rejects


def pii_columns(columns) -> list[str]:
    """The columns that identify a person (address, names, phone numbers, e-mail): never in plan outputs
    unless asked for (``gridengine plan --include-pii``)."""
    import re

    pat = re.compile(r"address|addr$|name|phone|mobile|e-?mail|^tel(ephone)?$", re.IGNORECASE)
    return [str(c) for c in columns if str(c) != "customer_id" and pat.search(str(c))]


def read_customer_pii(path: str | Path, *, config: InputConfig = InputConfig()) -> pd.DataFrame:
    """``customer_id`` and the :func:`pii_columns` of a customers file, one row per id (its first row).

    Read only when a planner asks for personal data in the plan (``--include-pii``).
    """
    path = Path(path)
    df = apply_mapping(normalise_columns(read_raw(path, config.encoding, sheet=config.sheet), str(path)),
                        "customers", config.columns, str(path))
    require_columns(df, ["customer_id"], str(path))
    cols = pii_columns(df.columns)
    out = pd.DataFrame({"customer_id": as_text(df["customer_id"]).astype(str).to_numpy(dtype=object)})
    for c in cols:
        out[c] = as_text(df[c]).to_numpy(dtype=object)
    return out.drop_duplicates("customer_id", keep="first").reset_index(drop=True)


def read_customers(
    path: str | Path, *, config: InputConfig = InputConfig()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a customers file (CSV, Parquet, GeoParquet, GeoJSON, GeoPackage).

    Parameters
    ----------
    path
        The file.
    config
        Input settings (encoding, reject threshold).

    Returns
    -------
    customers, rejects
        As :func:`validate_customers`.

    Raises
    ------
    InputError
        The file is missing, unreadable, empty, lacks a required column, or too many rows
        are bad. The message starts with the path and names the row and column where one applies.
    """
    path = Path(path)
    return validate_customers(read_raw(path, config.encoding, sheet=config.sheet), config=config, source=str(path))


def validate_specialists(df: pd.DataFrame, *, source: str = "specialists",
                         config: InputConfig | None = None) -> pd.DataFrame:
    """Validate a roster; any bad row is an error.

    Headers are recognised as in :func:`column_mapping` (专员编号, 工号, 产能 … and
    ``config.columns``).

    Returns
    -------
    specialists
        ``specialist_id`` (str), ``lat``, ``lon``, ``capacity`` (float), ``current_grid`` (str, '' if none),
        ``row`` (int), then the other input columns.

    Raises
    ------
    InputError
        On a missing column, no rows, or the first bad value (file, row, column and value named;
        up to five problems are listed).
    """
    df = apply_mapping(normalise_columns(df, source), "specialists", config.columns if config else None, source)
    require_columns(df, ["specialist_id", "lat", "lon", "capacity"], source)
    n = len(df)
    if n == 0:
        raise InputError(f"{source}: no specialists (header only)", path=source)
    reasons = _Reasons(n)
    ids = as_text(df["specialist_id"])
    reasons.add((ids == "").to_numpy(), "column 'specialist_id': empty")
    lat, lon = _check_coordinates(df, reasons, needed=np.ones(n, dtype=bool))
    cap, c_empty, c_bad = parse_numeric(df["capacity"])
    if c_bad.any():
        reasons.add(c_bad, _fmt_values("column 'capacity': value {!r} is not a number", as_text(df["capacity"]), c_bad))
    reasons.add(c_empty, "column 'capacity': empty")
    with np.errstate(invalid="ignore"):
        reasons.add(~np.isfinite(cap) & ~np.isnan(cap), "column 'capacity': infinite")
        reasons.add(cap <= 0, _fmt_values("column 'capacity': value {} must be positive", cap, cap <= 0))
    dup = ids.duplicated(keep="first").to_numpy() & (ids != "").to_numpy()
    if dup.any():
        first_rows = {}
        for i, s in enumerate(ids):
            first_rows.setdefault(s, i + 1)
        reasons.add(dup, np.array([f"duplicate specialist_id {s!r} (first at row {first_rows[s]})" for s in ids], dtype=object))
    if reasons.bad.any():
        idx = np.flatnonzero(reasons.bad)
        first = int(idx[0])
        field = str(reasons.reason[first]).split("'")[1] if "column '" in str(reasons.reason[first]) else None
        more = "; ".join(f"row {i + 1}: {reasons.reason[i]}" for i in idx[1:5])
        tail = f" (also {more}{' …' if len(idx) > 5 else ''})" if more else ""
        raise InputError(
            f"{source}: row {first + 1}: {reasons.reason[first]}{tail}; {len(idx)} bad specialist row(s)",
            path=source, row=first + 1, field=field,
        )
    out = pd.DataFrame({
        "specialist_id": ids.to_numpy(dtype=object).astype(str),
        "lat": lat,
        "lon": lon,
        "capacity": cap,
        "current_grid": as_text(df["current_grid"]).to_numpy(dtype=object) if "current_grid" in df.columns else "",
        "row": np.arange(1, n + 1),
    })
    for c in df.columns:
        if c not in out.columns:
            out[c] = df[c].to_numpy()
    out["current_grid"] = out["current_grid"].astype(str)
    return out


def read_specialists(path: str | Path, *, config: InputConfig = InputConfig()) -> pd.DataFrame:
    """Read and validate a specialists file (roster).

    Parameters
    ----------
    path
        CSV, Parquet, GeoParquet, GeoJSON or GeoPackage with ``specialist_id``, ``lat``, ``lon``, ``capacity``.
    config
        Input settings (encoding).

    Returns
    -------
    specialists
        As :func:`validate_specialists`.
    """
    path = Path(path)
    return validate_specialists(read_raw(path, config.encoding, sheet=config.specialists_sheet), source=str(path),
                                config=config)


def _convert_geometry(geom, coord_system: str):
    """A geometry's coordinates from ``coord_system`` (gcj02, bd09) to WGS-84."""
    if coord_system in ("", "wgs84") or geom is None:
        return geom
    import shapely

    from .geocode import to_wgs84

    def fn(xy: np.ndarray) -> np.ndarray:
        lat, lon = to_wgs84(xy[:, 1].copy(), xy[:, 0].copy(), coord_system)
        return np.c_[lon, lat]

    return shapely.transform(geom, fn)


def read_geometry(path: str | Path, *, kinds: set[str] = frozenset({"Polygon", "MultiPolygon"}), what: str = "polygon",
                  coord_system: str = "wgs84"):
    """Read a vector file (GeoJSON, GeoPackage, GeoParquet) as one WGS-84 geometry.

    Parameters
    ----------
    path
        The file.
    kinds
        Geometry types accepted.
    what
        What the file is, for messages.
    coord_system
        The system its lon/lat coordinates are in when the file has no projected CRS
        (``"wgs84"``, ``"gcj02"``, ``"bd09"``); converted to WGS-84.

    Raises
    ------
    InputError
        Missing or unreadable file, or features of another geometry type than ``kinds``.
    """
    import shapely

    gdf = _read_features(Path(path), kinds, what)
    return _convert_geometry(shapely.union_all(shapely.make_valid(gdf.geometry.to_numpy())), coord_system)


def _read_features(path: Path, kinds, what: str):
    import geopandas as gpd

    if not path.exists():
        raise InputError(f"{path}: file not found", path=str(path))
    try:
        gdf = gpd.read_parquet(path) if path.suffix.lower() in _PARQUET_SUFFIXES else gpd.read_file(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable {what} file ({exc})", path=str(path)) from None
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    found = set(gdf.geom_type)
    if not len(gdf) or not found <= set(kinds):
        raise InputError(f"{path}: expected {' or '.join(sorted(kinds))} features, found {sorted(found) or 'none'}",
                         path=str(path), field="geometry")
    return gdf


#: Columns a zones file may name its zones in (the first found is used), unless one is given.
ZONE_NAME_COLUMNS = ("name", "名称", "district", "区", "区县", "zone", "zone_name", "NAME", "Name", "街道", "subdistrict")


class Zones(list):
    """The zones of a plan: a list of WGS-84 polygons, one per zone, with their ``names``.

    Parameters
    ----------
    geoms
        One (Multi)Polygon per zone.
    names
        One name per zone (from the file's name column, else "zone 1", "zone 2" …).
    column
        The column the names came from ('' if none).
    """

    def __init__(self, geoms, names: list[str] | None = None, column: str = "") -> None:
        super().__init__(geoms)
        self.names = list(names) if names is not None else [f"zone {i + 1}" for i in range(len(self))]
        self.column = column


def read_zones(path: str | Path, *, name_column: str | None = None, coord_system: str = "wgs84") -> Zones:
    """Read a zones file (one polygon feature per zone, e.g. districts or sub-districts).

    Parameters
    ----------
    path
        GeoJSON, GeoPackage or GeoParquet of polygons.
    name_column
        The column naming each zone; by default the first of :data:`ZONE_NAME_COLUMNS` present
        (``name``, ``名称``, ``district`` …), else zones are called "zone 1", "zone 2" ….
    coord_system
        The system of the file's lon/lat (converted to WGS-84).

    Returns
    -------
    Zones
        The polygons (a list) with ``.names``.

    Raises
    ------
    InputError
        Missing or unreadable file, features that are not polygons, a ``name_column`` the file
        does not have, or two zones of one name (the file, row and column named).
    """
    import shapely

    path = Path(path)
    gdf = _read_features(path, {"Polygon", "MultiPolygon"}, "zones")
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    if name_column:
        if name_column not in cols:
            raise InputError(f"{path}: zone name column {name_column!r} is missing (columns found: {', '.join(map(str, cols))})",
                             path=str(path), field=name_column)
        col = name_column
    else:
        col = next((c for c in ZONE_NAME_COLUMNS if c in cols), "")
    geoms = [_convert_geometry(shapely.make_valid(g), coord_system) for g in gdf.geometry]
    if col:
        names = [str(v).strip() if v is not None and str(v).strip() not in ("", "nan", "None") else f"zone {i + 1}"
                 for i, v in enumerate(gdf[col].tolist())]
        seen: dict[str, int] = {}
        for i, nm in enumerate(names):
            if nm in seen:
                raise InputError(f"{path}: row {i + 1}: column {col!r}: zone name {nm!r} also names row {seen[nm] + 1}; "
                                 "give each zone one feature (a MultiPolygon for a zone in several parts)",
                                 path=str(path), row=i + 1, field=col)
            seen[nm] = i
    else:
        names = None
    return Zones(geoms, names, col)


def read_service_area(path: str | Path):
    """Read a service-area (or zones) polygon file as one WGS-84 geometry.

    Raises
    ------
    InputError
        Missing or unreadable file, no polygons, or invalid geometry.
    """
    return read_geometry(path, kinds={"Polygon", "MultiPolygon"}, what="polygon")


#: Geometry kinds a barriers file may hold.
BARRIER_KINDS = frozenset({"Polygon", "MultiPolygon", "LineString", "MultiLineString"})


@dataclass
class CityTables:
    """The ingest stage's result: a city's inputs read and validated (see :func:`read_city`).

    Attributes
    ----------
    customers
        Valid customer rows (``customer_id``, ``lat``/``lon`` or ``address``, ``workload``, ``row``, …).
    rejects
        Rows refused, with ``row``, ``field`` and ``reason`` (:data:`REJECT_COLUMNS`).
    roster
        The specialists (``specialist_id``, ``lat``, ``lon`` in WGS-84, ``capacity``,
        ``current_grid``, ``row``); empty without a roster.
    has_roster
        Whether a roster was given (else the plan gives the staffing need at ``partition.capacity``).
    previous
        The previous plan of a re-run (:class:`~gridengine.plan.Plan`), or None.
    service_area, barriers, zones
        The geometries (zones with their names, :class:`Zones`), or None.
    locks, frozen, pins
        The locks file read (:class:`~gridengine.locks.Locks`), the whole grids it keeps
        (:class:`~gridengine.locks.LockedGrids`) and its cell pins, each or None.
    """

    customers: pd.DataFrame
    rejects: pd.DataFrame
    roster: pd.DataFrame
    has_roster: bool
    previous: Any = None
    service_area: Any = None
    barriers: Any = None
    zones: Any = None
    locks: Any = None
    frozen: Any = None
    pins: pd.DataFrame | None = None


def read_city(inputs: Any, config: Any, *, previous: Any = None) -> CityTables:
    """Read and validate a city's inputs: customers, roster, previous plan, geometries and locks.

    Specialists' coordinates are converted to WGS-84 here (``input.coord_system_of("specialists")``);
    customers' are converted by the geocoding stage, with the rest of their placing.

    Parameters
    ----------
    inputs
        The city's :class:`~gridengine.inputs.CityInputs`.
    config
        The run's :class:`~gridengine.config.Config`.
    previous
        The previous plan of a re-run (folder or :class:`~gridengine.plan.Plan`), or None.

    Returns
    -------
    CityTables

    Raises
    ------
    InputError
        Unusable input, naming the file, row and column.
    ConfigError
        No roster and no ``partition.capacity``.
    """
    from .config import Config
    from .errors import ConfigError
    from .geocode import to_wgs84
    from .locks import read_locks, resolve_locks
    from .plan import Plan

    config = config if config is not None else Config()
    customers, specialists = inputs.customers, inputs.specialists
    if isinstance(customers, pd.DataFrame):
        cust, rejects0 = validate_customers(customers, config=config.input)
    else:
        cust, rejects0 = read_customers(customers, config=config.input)
    if specialists is None:  # staffing need only: how many specialists at this capacity?
        if config.partition.capacity is None:
            raise ConfigError("without a roster, give the grid capacity (partition.capacity / --capacity)")
        roster = pd.DataFrame({"specialist_id": pd.Series(dtype=str), "lat": pd.Series(dtype=float),
                               "lon": pd.Series(dtype=float), "capacity": pd.Series(dtype=float),
                               "current_grid": pd.Series(dtype=str), "row": pd.Series(dtype="int64")})
    elif isinstance(specialists, pd.DataFrame):
        roster = validate_specialists(specialists)
    else:
        roster = read_specialists(specialists, config=config.input)
    for rule in config.assign.rules:
        for table, col, src in ((cust, rule.customer_column, "customers"), (roster, rule.specialist_column, "specialists")):
            if col not in table.columns and (src == "customers" or len(roster)):
                raise InputError(f"{src}: column {col!r} named by a staffing rule is missing", field=col)
    prev_plan = Plan.read(previous) if isinstance(previous, (str, Path)) else previous
    if prev_plan is not None and len(roster) and (roster["current_grid"] == "").all():
        # continuity: a specialist stays on the grid they served in the previous plan
        had = prev_plan.specialists.set_index("specialist_id")["grid_id"].astype(str)
        roster["current_grid"] = roster["specialist_id"].map(had).fillna("").astype(str)
    service_area, barriers, zones = inputs.service_area, inputs.barriers, inputs.zones
    area = read_service_area(service_area) if isinstance(service_area, (str, Path)) else service_area
    barrier_geom = read_geometry(barriers, kinds=BARRIER_KINDS, coord_system=config.input.coord_system_of("barriers")
                                 ) if isinstance(barriers, (str, Path)) else barriers
    zone_geom = read_zones(zones, name_column=config.input.zone_name_column or None,
                           coord_system=config.input.coord_system_of("zones")) if isinstance(zones, (str, Path)) else zones
    # locks: whole grids of the previous plan (planned apart) and cell pins (first plans)
    locks = read_locks(inputs.locked, encoding=config.input.encoding, columns=config.input.columns) \
        if inputs.locked is not None else None
    frozen = resolve_locks(locks, prev_plan, roster if specialists is not None else None,
                           capacity_limit=config.partition.capacity if specialists is not None else None
                           ) if locks is not None else None
    pins = None
    if locks is not None and len(locks.cells):
        pins = locks.cells
        pins.attrs["source"] = locks.source
    if config.input.coord_system_of("specialists") != "wgs84" and len(roster):
        roster["lat"], roster["lon"] = to_wgs84(roster["lat"].to_numpy(), roster["lon"].to_numpy(),
                                                config.input.coord_system_of("specialists"))
    return CityTables(customers=cust, rejects=rejects0, roster=roster, has_roster=specialists is not None,
                      previous=prev_plan, service_area=area, barriers=barrier_geom, zones=zone_geom, locks=locks,
                      frozen=frozen, pins=pins)
