"""Chinese address normalisation and the local gazetteer (an insurer's own address master).

An address is parsed into ``district`` (区/县/市/旗), ``street`` (街道/镇/乡/路/街/大道),
``community`` (社区/居委会/村委会), ``compound`` (the rest: 小区, 花园, 村, ...) and the
``building`` / ``unit`` / ``room`` numbers, in any order (``2单元9栋`` is ``9栋2单元``).
Normalisation: NFKC (full-width digits, letters and spaces become half-width), common
traditional / variant forms (號 -> 号, 幢/座/棟/号楼 -> 栋, 單元 -> 单元, 房/号 at the end -> 室,
``9-2-3902`` -> ``9栋2单元3902室``), Chinese numerals before 栋/单元, spaces and punctuation
dropped, and the province / city prefix stripped (it never tells two addresses of one
city apart). The district is kept when given but is optional in matching.

Matching (:meth:`Gazetteer.match`), after stripping the prefixes the gazetteer's own rows
carry, also when written without 省/市 (``广东深圳``):

1. exact: dictionary lookup of the normalised street|community|compound#building|unit|room
   key (a district, when given, must agree) -> ``exact``, score 100;
2. the compound by fuzzy matching: rapidfuzz ``fuzz.ratio`` on district + street + community
   + compound name (the parts the query has) against compounds sharing a street, community
   or name with the query (blocking), at least ``min_score``, and the compound name itself at
   most ``max(1, len * (100 - min_score) / 50)`` edits away (OSA), so a close street and
   community cannot carry a different compound. Ties: a transposition beats a substitution;
   still tied compounds more than 200 m apart are *ambiguous* (not guessed). Inside the
   compound the building / unit / room is looked up -> ``exact`` (compound found exactly) or
   ``fuzzy`` (score = the compound's); else the building's point, else the compound's ->
   ``compound``;
3. coarser fallbacks: community, street, district (exact name, else fuzzy >= ``min_score``).

Results are deterministic: ties go to the earlier gazetteer row.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from .cells import haversine_km

__all__ = ["Address", "normalise_address", "parse_address", "Gazetteer", "Match"]

_TRAD = str.maketrans({"號": "号", "區": "区", "單": "单", "樓": "楼", "棟": "栋", "幢": "栋", "門": "门",
                       "縣": "县", "鎮": "镇", "鄉": "乡", "園": "园", "廣": "广", "東": "东", "灣": "湾",
                       "莊": "庄", "華": "华", "龍": "龙", "寶": "宝", "嶺": "岭", "豐": "丰", "鳳": "凤"})
_PUNCT = re.compile(r"[\s,，、;；:：_·•#＃/\\()（）\[\]【】{}<>《》\"'“”‘’.。!！?？~]+")
_CN_NUM = re.compile(r"([一二三四五六七八九十两]+)(?=栋|单元|号楼)")
_DASHED = re.compile(r"(\d+)-(\d+)-(\d+)(?:室|号)?$")
_VARIANTS = [
    (re.compile(r"(\d+)(?:号楼|号栋|栋楼|座|栋|号(?=\d+(?:单元|室)))"), r"\1栋"),
    (re.compile(r"(\d+)(?:单元|门洞)"), r"\1单元"),
    (re.compile(r"(\d+)(?:室|号房|房)"), r"\1室"),
]
_TAIL = re.compile(r"(\d+)(栋|单元|室)")
_BARE_END = re.compile(r"(?<=栋|元)(\d+)号?$")
_PREFIX = re.compile(r"^(?:中国|中华人民共和国)?(?:[^\d省]{2,3}省|[^\d]{2,6}?自治区)?(?:[^\d区县省]{2,4}?市(?!场))?")
_HEAD = re.compile(r"^(?P<d>[^\d]{1,6}?(?<![社小园校景])(?:区|县|旗|市(?!场)))?"
                   r"(?P<s>[^\d]{1,10}?(?:街道|镇|乡|大道|路|街))?"
                   r"(?P<c>[^\d]{1,8}?(?:社区|居委会|村委会))?(?P<p>.*)$")
_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}


class Address(NamedTuple):
    district: str
    street: str
    community: str
    compound: str
    building: str
    unit: str
    room: str

    def text(self) -> str:
        """The canonical normalised text: district, street, community, compound, 栋, 单元, 室."""
        return "".join((self.district, self.street, self.community, self.compound,
                        self.building and self.building + "栋", self.unit and self.unit + "单元",
                        self.room and self.room + "室"))


def _cn_int(m: re.Match) -> str:
    s = m.group(1)
    if "十" in s:
        a, _, b = s.partition("十")
        v = (_CN_DIGITS.get(a, 1) if a else 1) * 10 + (_CN_DIGITS.get(b, 0) if b else 0)
    else:
        v = int("".join(str(_CN_DIGITS[c]) for c in s))
    return str(v)


def _clean(text: str) -> str:
    """Normalised text before the province/city prefix is stripped."""
    s = unicodedata.normalize("NFKC", str(text)).translate(_TRAD)
    s = _PUNCT.sub("", s.replace("－", "-").replace("—", "-"))
    s = _DASHED.sub(r"\1栋\2单元\3室", s).replace("-", "")
    s = _CN_NUM.sub(_cn_int, s)
    for rx, rep in _VARIANTS:
        s = rx.sub(rep, s)
    return _BARE_END.sub(r"\1室", s)


def parse_address(text: str) -> Address:
    """Parse a (raw or normalised) Chinese address into its parts; missing parts are ``""``."""
    s = _PREFIX.sub("", _clean(text), count=1)
    tail = {"栋": "", "单元": "", "室": ""}
    first = _TAIL.search(s)
    head = s if first is None else s[: first.start()]
    if first is not None:
        for num, kind in _TAIL.findall(s, first.start()):
            if not tail[kind]:
                tail[kind] = num.lstrip("0") or "0"
    g = _HEAD.match(head)
    return Address(g["d"] or "", g["s"] or "", g["c"] or "", g["p"], tail["栋"], tail["单元"], tail["室"])


def normalise_address(text: str) -> str:
    """Canonical form of an address: ``normalise_address(a) == normalise_address(b)`` when they
    differ only in width, spaces, punctuation, variant characters, province/city prefix, the
    order of building and unit, or the spelling of 栋/单元/室 (a district given in one and not
    the other still differs: use :func:`parse_address` to compare without it)."""
    return parse_address(text).text()


class Match(NamedTuple):
    lat: float
    lon: float
    precision: str  # exact, fuzzy, compound, community, street, district, failed
    score: float
    reason: str


class Gazetteer:
    """Index of a table of addresses with WGS-84 ``lat``/``lon`` for fast exact and fuzzy lookup.

    Rows may be at any depth: a full address (room), a building, a compound, a community, a
    street or a district; the point of a coarser level not given as a row of its own is the
    mean of the points of the finer ones (buildings of a compound, compounds of a community...).
    """

    def __init__(self, addresses, lat, lon) -> None:
        df = pd.DataFrame([parse_address(a) for a in addresses], columns=list(Address._fields))
        df["lat"], df["lon"] = np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
        df["ckey"] = df["street"] + "|" + df["community"] + "|" + df["compound"]
        tkey = df["building"] + "|" + df["unit"] + "|" + df["room"]
        self.n_rows = len(df)
        # prefixes the rows carry ("广东省深圳市") and their short forms ("广东深圳", "深圳"), stripped
        # from queries that write them without 省/市
        pre = {m.group(0) for a in pd.unique(pd.Series(addresses, dtype=str).str[:12]) if (m := _PREFIX.match(_clean(a)))}
        short = {v for p in pre for v in (p, re.sub(r"省|市|自治区", "", p), re.sub(r"市$", "", p),
                                          *re.findall(r"[^省市]+(?=省|市)", p)) if len(v) >= 2}
        self._prefixes = sorted(short, key=len, reverse=True)
        self._lat, self._lon, self._dist = df["lat"].to_numpy(), df["lon"].to_numpy(), df["district"].to_numpy()
        self._exact: dict[str, list[int]] = {}
        for i, k in enumerate(df["ckey"] + "#" + tkey):
            self._exact.setdefault(k, []).append(i)
        cp = df[df["compound"] != ""]
        grp = cp.groupby("ckey", sort=False)
        bld = cp[cp["building"] != ""].groupby(["ckey", "building"], sort=False)[["lat", "lon"]].mean()
        self._building = {k: (la, lo) for k, la, lo in zip(bld.index, bld["lat"], bld["lon"])}
        # a compound's point: its own row, else the mean of its buildings' points
        given = cp[(cp["building"] + cp["unit"] + cp["room"]) == ""].groupby("ckey", sort=False)[["lat", "lon"]].first()
        mean = bld.groupby(level=0, sort=False).mean()
        comp = grp[["district", "street", "community", "compound"]].first().join(
            pd.concat([given, mean[~mean.index.isin(given.index)]]))
        comp = comp.fillna(grp[["lat", "lon"]].mean())
        self._comp = comp.reset_index()
        self._comp_id = {k: i for i, k in enumerate(self._comp["ckey"])}
        self._c = {c: self._comp[c].to_numpy() for c in self._comp.columns}
        # coarser levels: a row of its own wins, else the mean of the finer level's points
        self._level: dict[str, dict[str, tuple[float, float]]] = {}
        finer, coarse = self._comp, df[df["compound"] == ""]
        names = ["district", "street", "community"]
        for lvl, cols, own in (("community", ["street", "community"], coarse["community"] != ""),
                               ("street", ["street"], (coarse["community"] == "") & (coarse["street"] != "")),
                               ("district", ["district"], (coarse["street"] == "") & (coarse["community"] == ""))):
            keyed = pd.concat([finer[names + ["lat", "lon"]].assign(own=False),
                               coarse.loc[own, names + ["lat", "lon"]].assign(own=True)], ignore_index=True)
            keyed["k"] = keyed[cols[0]].str.cat(keyed[cols[1:]], sep="|") if len(cols) > 1 else keyed[cols[0]]
            keyed = keyed[keyed[cols].ne("").any(axis=1)]
            mean = keyed[~keyed["own"]].groupby("k", sort=False)[names + ["lat", "lon"]].agg(
                {**{c: "first" for c in names}, "lat": "mean", "lon": "mean"})
            pt = pd.concat([keyed[keyed["own"]].groupby("k", sort=False)[names + ["lat", "lon"]].first(), mean])
            pt = pt[~pt.index.duplicated()]
            self._level[lvl] = {k: (la, lo) for k, la, lo in zip(pt.index, pt["lat"], pt["lon"])}
            finer = pt.reset_index(drop=True)
        self._districts, self._streets = (sorted(self._level[v], key=len, reverse=True) for v in ("district", "street"))
        # blocking keys: street, community, compound name -> compound ids (ascending)
        self._block: dict[tuple[str, str], list[int]] = {}
        for i, (s, c, p) in enumerate(zip(self._c["street"], self._c["community"], self._c["compound"])):
            for b in (("s", s), ("c", c), ("p", p)):
                if b[1]:
                    self._block.setdefault(b, []).append(i)
        self._choices: dict[tuple[bool, bool, bool], list[str]] = {}

    def __len__(self) -> int:
        return self.n_rows

    def _strings(self, pattern: tuple[bool, bool, bool]) -> list[str]:
        """Compound names prefixed by the parts (district, street, community) a query has."""
        if pattern not in self._choices:
            cols = [c for c, use in zip(("district", "street", "community"), pattern) if use] + ["compound"]
            self._choices[pattern] = self._comp[cols].agg("".join, axis=1).tolist() if len(self._comp) else []
        return self._choices[pattern]

    def _find_compound(self, a: Address, min_score: float) -> tuple[int, float, str]:
        """Best compound for ``a`` as (id, score, reason); id -1 when none reaches ``min_score``."""
        if not a.compound:
            return -1, 0.0, "no compound in the address"
        cid = self._comp_id.get(f"{a.street}|{a.community}|{a.compound}", -1)
        if cid >= 0 and (not a.district or self._c["district"][cid] in ("", a.district)):
            return cid, 100.0, ""
        blocks = (("s", a.street), ("c", a.community), ("p", a.compound))
        cand = sorted({i for b in blocks for i in self._block.get(b, ())}) or range(len(self._comp))
        strings = self._strings((bool(a.district), bool(a.street), bool(a.community)))
        query = "".join((a.district, a.street, a.community, a.compound))
        choices = [strings[i] for i in cand]
        best = process.extract(query, choices, scorer=fuzz.ratio, score_cutoff=min_score, limit=8)
        # the name alone must be close too (one typo in a short name): "景城新村" is not "天城花园"
        edits = max(1, int(len(a.compound) * (100.0 - min_score) / 50.0))
        best = [b for b in best if OSA.distance(a.compound, self._c["compound"][cand[b[2]]], score_cutoff=edits) <= edits]
        if not best:
            top = process.extractOne(query, choices, scorer=fuzz.ratio)
            return -1, 0.0, f"no compound scores {min_score:g} or more" + (f" (best {top[1]:.0f}: {top[0]})" if top and top[1] else "")
        tied = [b for b in best if b[1] == best[0][1]]
        if len(tied) > 1:  # ties: prefer the same characters in another order (a transposition typo)
            bag = "".join(sorted(query))
            second = [fuzz.ratio(bag, "".join(sorted(b[0]))) for b in tied]
            tied = [b for b, s2 in zip(tied, second) if s2 == max(second)]
        i0 = cand[tied[0][2]]
        for b in tied[1:]:
            i1 = cand[b[2]]
            if haversine_km(self._c["lat"][i0], self._c["lon"][i0], self._c["lat"][i1], self._c["lon"][i1]) > 0.2:
                return -1, 0.0, f"ambiguous: {tied[0][0]} and {b[0]} both score {b[1]:.0f}"
        return i0, float(best[0][1]), ""

    def match_one(self, text: str, min_score: float = 85.0) -> Match:
        """Match one address (see the module docstring for the order of attempts)."""
        a = parse_address(text)
        first = next(f for f in ("district", "street", "community", "compound") if getattr(a, f) or f == "compound")
        v = getattr(a, first)
        pre = next((p for p in self._prefixes if v.startswith(p) and len(v) > len(p) + 1), "")
        if pre:
            a = a._replace(**{first: v[len(pre):]})
        for part, vocab in (("district", self._districts), ("street", self._streets)):
            v = getattr(a, part)  # a prefix without 省/市 markers ("广东深圳南山区") ends in a known name
            if v and v not in self._level[part]:
                a = a._replace(**{part: next((k for k in vocab if v.endswith(k)), v)})
        tkey = f"{a.building}|{a.unit}|{a.room}"
        for r in self._exact.get(f"{a.street}|{a.community}|{a.compound}#{tkey}", ()):
            if not a.district or self._dist[r] in ("", a.district):
                return Match(float(self._lat[r]), float(self._lon[r]), "exact", 100.0, "")
        cid, score, why = self._find_compound(a, min_score)
        if cid >= 0:
            ckey = self._c["ckey"][cid]
            rows = self._exact.get(f"{ckey}#{tkey}")
            if rows and tkey != "||":
                return Match(float(self._lat[rows[0]]), float(self._lon[rows[0]]),
                             "exact" if score == 100.0 else "fuzzy", score, "")
            pt = self._building.get((ckey, a.building)) or (self._c["lat"][cid], self._c["lon"][cid])
            return Match(float(pt[0]), float(pt[1]), "compound", score, "")
        reasons = [why]
        for lvl, key, given in (("community", f"{a.street}|{a.community}", a.community),
                                ("street", a.street, a.street), ("district", a.district, a.district)):
            if not given:
                continue
            table = self._level[lvl]
            hit = (key, 100.0) if key in table else None
            if hit is None and lvl != "district" and table:
                hit = process.extractOne(key, list(table), scorer=fuzz.ratio, score_cutoff=min_score)
            if hit:
                return Match(*map(float, table[hit[0]]), lvl, float(hit[1]), "; ".join(reasons))
            reasons.append(f"{lvl} {given} not in the gazetteer")
        return Match(np.nan, np.nan, "failed", 0.0, "; ".join(r for r in reasons if r))

    def match(self, texts, min_score: float = 85.0) -> pd.DataFrame:
        """Match addresses: DataFrame ``lat, lon, precision, score, reason`` in input order.

        Each distinct address text is matched once."""
        codes, uniques = pd.factorize(pd.Series(texts, dtype="object").fillna("").astype(str))
        res = pd.DataFrame([self.match_one(t, min_score) for t in uniques], columns=list(Match._fields))
        return res.iloc[codes].reset_index(drop=True)
