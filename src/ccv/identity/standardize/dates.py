"""Dates from text in the formats CRMs export, typed values passed through."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.standardize.kernels import _arrow_text, _clean, _distinct, _to_text
from ccv.identity.standardize.text import _clean_values

DATE_DTYPE = pd.ArrowDtype(pa.date32())
"""dtype of `parse_date` output: a real calendar date (no time, no timezone), NA for missing."""

# --------------------------------------------------------------------------------------------
# dates


def parse_date(
    s: pd.Series, dayfirst: bool | None = None, formats: list[str] | None = None
) -> pd.Series:
    """Parse dates into a ``date32`` Series (`DATE_DTYPE`); unparseable or impossible -> NA.

    Why: birth dates arrive as text in mixed layouts and must compare as calendar dates.
    ``formats`` (strptime codes) are tried in order, first success wins. By default: ISO
    ``%Y-%m-%d`` (also with a time part), then ``%d/%m/%Y`` (``%m/%d/%Y`` when
    ``dayfirst=False``; ``None`` means day first, the UK convention), plus the same with "-"
    and "." separators. Impossible dates such as 31/02 are NA. Values that are already dates
    or timestamps pass through (time dropped).

    >>> parse_date(pd.Series(["1985-03-02", "02/03/1985", "31/02/2000"])).tolist()
    [datetime.date(1985, 3, 2), datetime.date(1985, 3, 2), <NA>]
    """
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return pd.Series(s.dt.floor("D").astype(DATE_DTYPE), index=s.index, name=s.name)
    if s.dtype == DATE_DTYPE:
        return s.copy()
    if formats is None:
        day, month = ("%d", "%m") if dayfirst is None or dayfirst else ("%m", "%d")
        formats = [
            "%Y-%m-%d",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            *(f"{day}{sep}{month}{sep}%Y" for sep in "/-."),
        ]
    if _arrow_text(s) is not None:  # text only: clean the distinct values in Arrow
        arrow_codes, uniques = _distinct(s)
        codes = pc.fill_null(arrow_codes, -1).to_numpy(zero_copy_only=False)
        cleaned = _clean_values(uniques)
        is_text = pc.is_valid(cleaned)
        days = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[us]")
        positions = np.flatnonzero(is_text.to_numpy(zero_copy_only=False))
        todo = pd.Series(pd.array(cleaned.filter(is_text), dtype="str"), index=positions)
    else:
        codes, objects = pd.factorize(s, use_na_sentinel=True)
        objects = np.asarray(objects, dtype=object)
        days = np.full(len(objects), np.datetime64("NaT"), dtype="datetime64[us]")
        positions, texts = [], []
        for i, value in enumerate(objects):
            if isinstance(value, dt.date | np.datetime64):  # date, datetime, pd.Timestamp
                stamp = pd.Timestamp(value)
                days[i] = stamp.tz_localize(None).floor("D") if stamp.tz else stamp.floor("D")
            elif (cleaned_text := _clean(_to_text(value))) is not None:
                positions.append(i)
                texts.append(cleaned_text)
        todo = pd.Series(texts, index=positions, dtype="str")
    for fmt in formats:
        if todo.empty:
            break
        got = pd.to_datetime(todo, format=fmt, errors="coerce")
        ok = got.notna().to_numpy()
        days[todo.index[ok]] = got[ok].dt.floor("D").to_numpy(dtype="datetime64[us]")
        todo = todo[~ok]
    values = np.append(days, np.datetime64("NaT", "us"))[codes]
    return pd.Series(values, index=s.index, name=s.name).astype(DATE_DTYPE)
