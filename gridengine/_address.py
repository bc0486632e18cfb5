"""Chinese addresses as people write them, and the local gazetteer (a standard address library).

Parsing
-------
An address is read into ``district`` (区/县/新区), ``street`` (街道/镇), ``community``
(社区/居委会/村委会), ``road`` and ``number`` (the 门牌: 康乐南路53号, 水径村三巷12号,
with 之/-/附 forms), ``compound`` (花园/小区/苑/大厦/广场 ..., phases 一期/二期 included),
``building`` (3栋, 3幢, 3座, 3号楼, 3#, A座, 三栋 are all building ``3`` or ``A``), ``unit``
and ``room`` (1102, 1102室, 11楼02, 6-2-1102, spoken 幺幺零二). Every part is optional and the
admin prefixes may come in any subset. Normalisation first: NFKC (full-width digits, letters
and spaces become half-width), traditional and variant characters, Chinese numerals before a
unit word (十八号, 三栋, 二单元) and spoken room numbers, phone numbers, postcodes and
recipient names of a delivery label, fillers (那个, 就是), landmarks (靠近 ..., (近 ...)), and
comma-separated addresses written from the room up to the city (reversed).

Without a gazetteer (:func:`parse_address`) the parts are found by their marker words alone.
With one (:meth:`Gazetteer.parse`) the gazetteer's own names decide: a road is a road the
gazetteer knows directly followed by a number, a district is one of its districts (also
without 区: 南山 for 南山区, unless the text goes on into a name that starts with it, such as
南山大道), and so on.

Matching (:meth:`Gazetteer.match_one`): by keys, never by the similarity of whole texts
---------------------------------------------------------------------------------------
1. ``road + number`` is a primary key. The road must lie in the district the address names
   (a road name in several districts with none named is resolved by the compound or the
   community, else only if the number exists in just one of them). The building is then looked
   up among the number's buildings -> ``building``; no building given and the number is one
   building -> ``building``; else the centre of the number's buildings -> ``house_number``.
2. The number is not in the gazetteer: the compound named, among the compounds of that road;
   else the point between the two nearest numbers on the same side of the same road
   (interpolated) -> ``nearest_house_number``. Numbers are never matched fuzzily.
3. No road: the compound by name, among the compounds of the named community or district (the
   whole city when none is named): the exact name, else its core (without 花园/小区/...),
   else one typo in the core (a symmetric-deletion index, so no scan of all compounds); the
   building inside it -> ``building``, else the compound's centre -> ``compound``. Names that
   fit compounds more than 200 m apart are *ambiguous* and not guessed, unless the building
   named rules all but one out (18栋 is not in a compound whose buildings stop at 6栋).
4. Coarser: the road's centre (``road``), the community's, the district's.

``radius_m`` of a match is how far the true point may lie from the one given: 0 for a building,
the farthest building of the number or compound from its centre, half the gap between the two
numbers used for an interpolation. Results are deterministic (ties to the earlier gazetteer row).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._geo import M_PER_DEG_EQUATOR

__all__ = ["Address", "normalise_address", "parse_address", "Gazetteer", "Match", "LEVELS"]

#: Precision levels, finest first.
from .config import PRECISION_LEVELS as LEVELS  # noqa: E402

_TRAD = str.maketrans({"號": "号", "區": "区", "單": "单", "樓": "楼", "棟": "栋", "門": "门", "縣": "县", "鎮": "镇",
                       "鄉": "乡", "園": "园", "廣": "广", "東": "东", "灣": "湾", "莊": "庄", "華": "华", "龍": "龙",
                       "寶": "宝", "嶺": "岭", "豐": "丰", "鳳": "凤", "葉": "叶", "劉": "刘", "陳": "陈", "橫": "横",
                       "崗": "岗", "圍": "围", "濱": "滨", "興": "兴", "業": "业", "萬": "万", "與": "与",
                       "廈": "厦", "場": "场", "閣": "阁", "館": "馆", "苑": "苑", "軒": "轩", "層": "层",
                       "〇": "零", "—": "-", "－": "-", "–": "-", "~": "-", "～": "-", "#": "#", "＃": "#"})
_CJK = re.compile(r"[\u4e00-\u9fff]")
# delivery-label noise: mobile and landline numbers, postcodes, "收件人:王先生"
_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)|(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
_POST = re.compile(r"(?:(?<=\s)|^|(?<=[,，]))[1-8]\d{5}(?=\s|$|[,，])")
_LABEL = re.compile(r"(?:收件人|收货人|联系人|姓名|电话|手机|联系电话|地址|详细地址|邮编)\s*[:：]\s*")
_PERSON = re.compile(r"(?:(?<=^)|(?<=[\s,，:：]))[\u4e00-\u9fff]{1,3}(?:先生|女士|小姐|太太|老师|总|生)(?=[\s,，]|$)")
_LANDMARK = re.compile(r"[(（]\s*(?:近|靠近|临近|旁|邻|对面|附近)[^)）]*[)）]|[,，]\s*(?:靠近|近|旁边|在|门口|对面|附近|临近)[^,，]*$")
_FILLER = re.compile(r"那个|就是|然后|嗯+|呃+|哦+|我家在|我住在|住在|(?:^|(?<=[市区县圳\s]))在")
_SEP = re.compile(r"[\s,，、;；:：_·•/\\()（）\[\]【】{}<>《》\"'“”‘’.。!！?？]+")
_NUM_CH = "零一二三四五六七八九十百千两幺"
_CN_RUN = re.compile(rf"[{_NUM_CH}]+(?=号|栋|幢|座|单元|楼|层|室|房|巷|坊|期|#|$|-|\d)")
_CN_VAL = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2, "幺": 1}
_BUILDING = re.compile(r"([0-9]{1,3}|[A-Za-z](?![A-Za-z]))(?:号楼|栋楼|栋|幢|座|#楼|#|号(?=\d+(?:单元|室|房))"
                       r"|(?<=[A-Za-z])(?=\d{3,4}(?:室|房|号)?$))")
_DASHED = re.compile(r"(?<![\d号])(\d{1,3}|[A-Za-z])-(?:(\d{1,2})-)?(\d{3,4})(?:室|房|号)?$")
_ROOM = re.compile(r"(\d{1,2})(?:楼|层)(\d{1,2})(?:室|房|号)?$|(\d{3,4})(?:室|房|号)?$")
_UNIT = re.compile(r"(\d{1,2})(?:单元|门洞)")
_ROAD_SFX = ("大道", "路", "街", "道", "巷", "坊", "弄", "里", "胡同", "大街")
_ROADNUM = re.compile(r"(?P<road>[^\d]{1,12}?(?:\d{1,2}(?:巷|坊|弄|路|街|道)|大道|路|街|道|巷|坊|弄|里|胡同))"
                      r"(?P<num>\d+)(?:(?:之|-|附)(?P<sub>\d+)(?=号))?(?:号|#|(?=-\d{1,3}(?:栋|座|幢|号楼|#)))(?!楼)")
_PREFIX = re.compile(r"^(?:中国|中华人民共和国)?(?:[^\d省]{2,3}省|[^\d]{2,6}?自治区)?(?:[^\d区县省]{2,4}?市(?!场))?")
_ADMIN = re.compile(r"^(?P<d>[^\d]{1,5}?(?<![社小园校景厂片])(?:新区|区|县))?(?P<s>[^\d]{1,6}?(?:街道|镇|乡))?"
                    r"(?P<c>[^\d]{1,8}?(?:社区|居委会|村委会))?")
_KINDS = sorted("花园 小区 家园 苑 名苑 华庭 豪庭 雅居 新村 公寓 大厦 广场 山庄 府 城 雅苑 居 嘉园 花城 公馆 庭 园 村 "
                "大楼 中心 商务中心 名邸 别墅 华府 雅园 阁 轩 湾 里 坊 宿舍 宿舍区".split(), key=len, reverse=True)
_DIGITS = re.compile(r"\d+")
_SUBNUM = re.compile(r"(?:之|-|附)(\d+)号(?!楼)")
# an input-method slip in a road's kind right before its number: 春风陆752号
_ROAD_TYPO = re.compile(r"(?<=[\u4e00-\u9fff])陆(?=\d)")
_ROADLIKE = re.compile(r"([^\d|]{2,10}?(?:\d{1,2}(?:巷|坊)|大道|路|街|巷|坊|道))(\d+)(?!\d)(?:号(?!楼)|#(?!楼))?"
                       r"(?!栋|座|幢|单元|号楼|#楼|楼|层|室|房)")
_NOISE_HINT = re.compile(r"\d{6}|[:：]|先生|女士|小姐|太太|老师|总|生|近|旁|对面|门口|那个|就是|然后|嗯|呃|哦|在")
_SPACED_NUM = re.compile(r"(?<=\d)\s+(?=\d)")
_CN_HINT = re.compile(rf"[{_NUM_CH}]")
_LOWER = re.compile(r"[a-z]")
_BKEY = re.compile(r"(\d+|[A-Za-z])")
_ADMIN_AFTER = re.compile(r"[^\d]{1,4}?(?:区|县|市|旗)|[^\d]{1,8}?(?:路|街|大道)\d")
_OTHER_CITY = re.compile(r"^(?:[^\d省]{2,3}省)?([^\d省]{2,3})市(?!场)")
_PROVINCE = re.compile("^(?:" + "|".join(
    "河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 四川 贵州 云南 陕西 甘肃 青海 台湾 "
    "内蒙古 广西 西藏 宁夏 新疆".split()) + ")(?!路|街|大道)")
_LETTER_END = re.compile(r"(?<=[\u4e00-\u9fff])([A-H])$")
# homophone slips in a compound's kind: 嘉信院 for 嘉信苑, 春天成 for 春天城
_KIND_SLIP = {"院": "苑", "圆": "园", "成": "城", "亭": "庭", "付": "府", "弯": "湾", "巨": "居", "元": "园", "厅": "庭"}
_HAS_DIGIT = re.compile(r"\d")
_PHASE = re.compile(r"(?:\d+|[一二三四五六七八九十]+)期$")


class Address(NamedTuple):
    """The parts of an address (``""`` where absent); ``building`` is ``3`` for 3栋/3座/三栋."""

    district: str = ""
    street: str = ""
    community: str = ""
    road: str = ""
    number: str = ""
    compound: str = ""
    building: str = ""
    unit: str = ""
    room: str = ""

    def text(self) -> str:
        """The canonical text: district, street, community, road + 号, compound, 栋, 单元, 室."""
        return "".join((self.district, self.street, self.community, self.road, self.number and self.number + "号",
                        self.compound, self.building and self.building + "栋", self.unit and self.unit + "单元",
                        self.room and self.room + "室"))


def _cn_value(run: str) -> str:
    """A run of Chinese numerals as digits: positional (一百零三 -> 103) or digit by digit (幺幺零二 -> 1102)."""
    if not any(c in run for c in "十百千"):
        return "".join(str(_CN_VAL[c]) for c in run)
    total, cur = 0, 0
    for c in run:
        if c in "十百千":
            total += (cur or 1) * {"十": 10, "百": 100, "千": 1000}[c]
            cur = 0
        else:
            cur = _CN_VAL[c]
    return str(total + cur)


def _reverse_if_upside_down(s: str) -> str:
    """``1102室, 3栋, 丰芳家园, 科技南路18号, 南山区, 深圳市`` -> from the city down."""
    parts = [p for p in re.split(r"[,，、;；]+", s) if p.strip()]
    if len(parts) >= 3:
        last, first = parts[-1].strip(), parts[0].strip()
        if re.search(r"(?:市|区|县|省)$", last) and not re.search(r"(?:市|区|县|省)$", first) and \
                re.search(r"\d", first):
            return ",".join(reversed(parts))
    return s


def clean(text: str) -> str:
    """Normalised text of an address (see the module docstring); the parts are not yet separated."""
    s = unicodedata.normalize("NFKC", str(text)).translate(_TRAD)
    if "," in s or "，" in s or "、" in s:
        s = _reverse_if_upside_down(s)
    if _NOISE_HINT.search(s):
        s = _PHONE.sub(" ", s)
        s = _POST.sub(" ", s.strip())
        if "：" in s or ":" in s:
            s = _LABEL.sub(" ", s)
        s = _PERSON.sub(" ", s)
        s = _LANDMARK.sub("", s)
        s = _FILLER.sub("", _FILLER.sub("", s))
    if " " in s:
        s = _SPACED_NUM.sub("-", s)  # "1672 6栋": keep the numbers apart
    s = _SEP.sub("", s)
    if _CN_HINT.search(s):
        s = _CN_RUN.sub(_cn_sub, s)
    if "陆" in s:
        s = _ROAD_TYPO.sub("路", s)
    return s.upper() if _LOWER.search(s) else s


def _cn_sub(m: re.Match) -> str:
    return _cn_value(m.group(0))


def _building_key(label: str) -> str:
    """3栋 / 3幢 / 3座 / 3号楼 / 3# / A座 -> 3 / A (digits without leading zeros)."""
    m = _BKEY.match(label)
    if not m:
        return ""
    k = m.group(1).upper()
    return k.lstrip("0") or "0" if k.isdigit() else k


def _tail(s: str) -> tuple[str, str, str, str]:
    """Split ``s`` into (head, building, unit, room) from its end."""
    building = unit = room = ""
    m = _DASHED.search(s)
    if m:
        building, unit, room = _building_key(m.group(1)), m.group(2) or "", m.group(3)
        return s[: m.start()], building, unit, room
    mb = _BUILDING.search(s)
    head = s if mb is None else s[: mb.start()]
    if mb is not None:
        building = _building_key(mb.group(1))
        mu = _UNIT.search(head)  # 2单元9栋: the unit written first
        if mu and mu.end() == len(head):
            unit, head = mu.group(1), head[: mu.start()]
        rest = s[mb.end():]
        mu = _UNIT.search(rest)
        if mu:
            unit = unit or mu.group(1)
            rest = rest[: mu.start()] + rest[mu.end():]
        mr = _ROOM.search(rest)
        if mr:
            room = mr.group(3) or (mr.group(1) + mr.group(2).zfill(2))
    else:
        mu = _UNIT.search(s)
        if mu:
            unit, head = mu.group(1), s[: mu.start()]
        ml = _LETTER_END.search(head)  # 风华海岸B: a block letter at the end
        if ml and not unit:
            return head[: ml.start()], ml.group(1), "", ""
        mr = _ROOM.search(head)
        if mr and mr.start() > 0 and not head[mr.start() - 1].isdigit():
            room = mr.group(3) or (mr.group(1) + mr.group(2).zfill(2))
            head = head[: mr.start()]
    return head, building, unit, room


def parse_address(text: str) -> Address:
    """Parse an address by its marker words alone (no gazetteer): the standard forms.

    Parameters
    ----------
    text
        A raw address (``广东省深圳市南山区粤海街道科技园社区科技南路18号丰芳家园3栋2单元1102室``).

    Returns
    -------
    Address
        Its parts; missing parts are ``""``.
    """
    s = _PROVINCE.sub("", _PREFIX.sub("", clean(text), count=1), count=1)
    g = _ADMIN.match(s)
    d, st, c = g["d"] or "", g["s"] or "", g["c"] or ""
    if d and len(d) - (2 if d.endswith("新区") else 1) == 4:  # 深圳南山区: a city without its 市
        d = d[2:]
    s = s[g.end():]
    road = number = ""
    m = _ROADNUM.match(s) or _ROADNUM.search(s)
    if m and (m.start() == 0 or True):
        road, number = m["road"], m["num"] + (f"-{m['sub']}" if m["sub"] else "")
        s = s[: m.start()] + s[m.end():]
    head, building, unit, room = _tail(s)
    return Address(d, st, c, road, number, head.strip("-#"), building, unit, room)


def normalise_address(text: str) -> str:
    """Canonical form of an address: equal for two writings that differ only in width, spaces,
    punctuation, variant characters, numerals, the province/city prefix, the order of building
    and unit, or the spelling of 栋/单元/室."""
    return parse_address(text).text()


def _core(name: str) -> str:
    """A compound's name without its phase and kind: 丰芳家园二期 -> 丰芳; 丰芳 -> 丰芳."""
    n = _PHASE.sub("", name)
    for k in _KINDS:
        if n.endswith(k) and len(n) > len(k) + 1:
            return n[: -len(k)]
    return n


def _one_typo(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by exactly one substituted character or one swap of neighbours."""
    if len(a) != len(b) or a == b:
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                              and a[diff[1]] == b[diff[0]])


def _bkey_order(b: str) -> tuple[int, str]:
    """Order of building keys: 3 < 12 (numbers by value), A < C."""
    return (int(b), "") if b.isdigit() else (0, b)


def _deletes(s: str) -> list[str]:
    return [s[:i] + s[i + 1:] for i in range(len(s))]


class Match(NamedTuple):
    lat: float
    lon: float
    precision: str  # one of LEVELS, or "failed"
    score: float
    reason: str
    radius_m: float = 0.0


_FAILED = (math.nan, math.nan, "failed", 0.0)


def _dist_m(lat0, lon0, lat1, lon1):
    k = M_PER_DEG_EQUATOR
    return np.hypot((np.asarray(lat1) - lat0) * k, (np.asarray(lon1) - lon0) * k * math.cos(math.radians(lat0)))


def _group_point(lat: np.ndarray, lon: np.ndarray, rows: list[int]) -> tuple[float, float, float]:
    """Mean point of ``rows`` and the distance (m) from it to the farthest of them."""
    la, lo = float(lat[rows].mean()), float(lon[rows].mean())
    return la, lo, float(_dist_m(la, lo, lat[rows], lon[rows]).max())


# kinds people swap freely for one another (丰芳家园 / 丰芳花园 / 丰芳小区)
_SWAP = ("花园", "家园", "小区")


class Gazetteer:
    """Index of a standard address library (address, WGS-84 ``lat``/``lon``) for key lookups.

    Rows may be at any depth (a room, a building, a number, a compound, a community ...);
    the point of a group not given as a row of its own (a number, a compound, a road) is the
    mean of its rows' points. Rooms and units are not told apart: a building's point is the
    mean of its rows.

    Parameters
    ----------
    addresses
        The addresses, parsed with :func:`parse_address`.
    lat, lon
        Their WGS-84 points.
    """

    def __init__(self, addresses, lat, lon) -> None:
        addresses = [str(a) for a in addresses]
        parts = [parse_address(a) for a in addresses]
        df = pd.DataFrame(parts, columns=list(Address._fields))
        la_all, lo_all = np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
        self._lat, self._lon = la_all, lo_all
        self.n_rows = len(df)
        # the province/city prefixes the rows carry, in their full and short forms
        pre = {m.group(0) for a in pd.unique(pd.Series(addresses, dtype=str).str[:12])
               if (m := _PREFIX.match(clean(a))) and m.group(0)}
        short = {v for p in pre for v in (*re.findall(r"[^省市]+(?:省|市)", p), *re.findall(r"[^省市]+(?=省|市)", p))
                 if len(v) >= 2}
        self._prefixes = sorted(short, key=len, reverse=True)
        self._prefix_tuple = tuple(self._prefixes)
        self.cities = sorted({c for p in pre for c in re.findall(r"([^省市]+)市", p)})
        dist, road, num, comp = df["district"].tolist(), df["road"].tolist(), df["number"].tolist(), df["compound"].tolist()
        comm, street, bkey = df["community"].tolist(), df["street"].tolist(), df["building"].tolist()
        self._districts = sorted({d for d in dist if d})
        self._dshort = {}
        for d in self._districts:
            sd = re.sub(r"(?:新区|区|县)$", "", d)
            if len(sd) >= 2:
                self._dshort[sd] = d
        self._district_set = set(self._districts)
        self._district_lens = sorted({len(d) for d in self._districts}, reverse=True)
        self._streets: dict[str, set[str]] = {}
        for s, d in zip(street, dist):
            if s:
                self._streets.setdefault(s, set()).add(d)
        self._communities = {c for c in comm if c}
        self._streets_short = {re.sub(r"(?:街道|镇|乡)$", "", s) for s in self._streets if len(s) >= 4}
        self._street_roadlike = sorted((s for s in self._streets if not s.endswith(("街道", "镇", "乡"))),
                                       key=len, reverse=True)
        # house numbers: (district, road, number) -> rows; roads by name -> districts
        by_num: dict[tuple[str, str, str], list[int]] = {}
        for i, (d, r, n) in enumerate(zip(dist, road, num)):
            if r:
                by_num.setdefault((d, r, n), []).append(i)
        self._num: dict[tuple[str, str, str], tuple] = {}
        self._num_b: dict[tuple[str, str, str, str], tuple[float, float, float]] = {}
        self._num_ckeys: dict[tuple[str, str, str], set[str]] = {}
        self._roads: dict[str, list[str]] = {}
        tmp: dict[tuple[str, str, int], list[tuple[int, float, float]]] = {}
        for k, rows in by_num.items():
            la, lo, rad = _group_point(la_all, lo_all, rows)
            bks = {bkey[r] for r in rows}
            self._num[k] = (la, lo, rad, len(bks), frozenset(comm[r] for r in rows), frozenset(street[r] for r in rows))
            for b in bks:
                if b:
                    self._num_b[(*k, b)] = _group_point(la_all, lo_all, [r for r in rows if bkey[r] == b])
            self._num_ckeys[k] = {f"{dist[r]}|{comm[r]}|{comp[r]}" for r in rows if comp[r]}
            m = re.match(r"\d+", k[2])
            if m:
                v = int(m.group(0))
                tmp.setdefault((k[0], k[1], v % 2), []).append((v, la, lo))
        for d, r in sorted({(d, r) for d, r, _ in by_num}):
            self._roads.setdefault(r, []).append(d)
        self._road_max = max((len(r) for r in self._roads), default=0)
        self._road_lens = sorted({len(r) for r in self._roads}, reverse=True)
        self._road_ends = {r[-1] for r in self._roads}
        self._road_del: dict[str, set[str]] = {}
        for r in self._roads:
            if len(r) >= 3:
                for v in _deletes(r[:-1]):
                    self._road_del.setdefault(v + r[-1], set()).add(r)
        self._sides = {}
        for k, v in tmp.items():
            v.sort()
            a = np.array(v)
            self._sides[k] = (a[:, 0], a[:, 1], a[:, 2])
        self._road_pts = {}
        for k, rows in pd.Series(range(len(df))).groupby([df["district"], df["road"]], sort=False).groups.items():
            if k[1]:
                self._road_pts[k] = _group_point(la_all, lo_all, list(rows))
        # compounds: district|community|name -> rows
        crows: dict[str, list[int]] = {}
        for i, (d, c, p) in enumerate(zip(dist, comm, comp)):
            if p:
                crows.setdefault(f"{d}|{c}|{p}", []).append(i)
        self._comp: dict[str, dict] = {}
        self._comp_b: dict[tuple[str, str], tuple[float, float, float]] = {}
        self._by_name: dict[str, list[str]] = {}
        self._by_core: dict[str, list[str]] = {}
        self._by_del: dict[str, list[tuple[str, str]]] = {}
        self._comp_by_area: dict[str, list[str]] = {}
        for k, rows in crows.items():
            d, c, name = k.split("|", 2)
            la, lo, rad = _group_point(la_all, lo_all, rows)
            core = _core(name)
            self._comp[k] = {"district": d, "community": c, "name": name, "core": core, "lat": la, "lon": lo,
                             "radius": rad, "roads": frozenset(road[r] for r in rows if road[r]), "rows": rows,
                             "street": street[rows[0]]}
            for area in {c, street[rows[0]]} - {""}:
                self._comp_by_area.setdefault(area, []).append(k)
            top: dict[bool, tuple] = {}
            for b in {bkey[r] for r in rows if bkey[r]}:
                self._comp_b[(k, b)] = _group_point(la_all, lo_all, [r for r in rows if bkey[r] == b])
                top[b.isdigit()] = max(top.get(b.isdigit(), (0, "")), _bkey_order(b))
            self._comp[k]["top"] = top
            self._by_name.setdefault(name, []).append(k)
            self._by_core.setdefault(core, []).append(k)
            # one-typo index (symmetric deletion) of the core and of the name without its phase
            for form in {core, _PHASE.sub("", name)}:
                if len(form) >= 4:
                    for v in _deletes(form):
                        self._by_del.setdefault(v, []).append((k, form))
        self._levels: dict[str, dict[tuple, tuple[float, float]]] = {}
        for lvl, cols in (("community", ["district", "community"]), ("district", ["district"])):
            g = df[df[cols[-1]] != ""].assign(lat=la_all[df[cols[-1]] != ""], lon=lo_all[df[cols[-1]] != ""])
            g = g.groupby(cols, sort=False)[["lat", "lon"]].mean()
            self._levels[lvl] = {(k if isinstance(k, tuple) else (k,)): (float(a), float(b))
                                 for k, a, b in zip(g.index, g["lat"], g["lon"])}
        # names starting with a district's short form (南山大道, 南山花园): not the district
        self._starts: dict[str, list[str]] = {}
        for name in list(self._roads) + list(self._streets) + list(self._by_name) + list(self._communities):
            for sd in self._dshort:
                if name.startswith(sd):
                    self._starts.setdefault(sd, []).append(name)

    def __len__(self) -> int:
        return self.n_rows

    # ------------------------------------------------------------------ parsing
    def parse(self, text: str) -> tuple[Address, str]:
        """Parse an address with the gazetteer's names.

        Parameters
        ----------
        text
            A raw address.

        Returns
        -------
        tuple
            The :class:`Address` and a note: why it cannot be matched (not Chinese, another
            city), or how a name was read (a typo), ``""`` otherwise.
        """
        return self._parse(text)[:2]

    def _parse(self, text: str) -> tuple[Address, str, str]:
        """:meth:`parse`, and the short district name taken from the start (南山 for 南山区) or ``""``."""
        s = clean(text)
        if not _CJK.search(s):
            return Address(), "not a Chinese address (no Chinese characters): romanised or foreign addresses are not matched", ""
        stripped = False
        for _ in range(3):
            p = next((p for p in self._prefixes if s.startswith(p)), "") if s.startswith(self._prefix_tuple) else ""
            if not p:
                break
            s, stripped = s[len(p):], True
        if not stripped:
            m = _OTHER_CITY.match(s)
            if m and self.cities and m.group(1) not in self.cities and not m.group(1).endswith("城") and \
                    not any(m.group(1).startswith(c) for c in self.cities) and _ADMIN_AFTER.match(s, m.end()):
                return Address(), f"names the city {m.group(1)}市; the gazetteer covers {'/'.join(self.cities)}市", ""
        note = dshort = ""
        district = street = community = ""
        i = s.find("区", 0, 16) if "区" in s or "县" in s else -1
        if i < 0:
            i = s.find("县", 0, 16)
        while i >= 1 and not district:  # a district's full name ends at the first 区/县 that closes one
            for L in self._district_lens:
                if L <= i + 1 and s[i + 1 - L: i + 1] in self._district_set:
                    district, s = s[i + 1 - L: i + 1], s[: i + 1 - L] + s[i + 1:]
                    break
            else:
                i = s.find("区", i + 1, 16)
        if not district:
            for L in (2, 3, 4):
                d = self._dshort.get(s[:L])
                if d and not any(s.startswith(n) for n in self._starts.get(s[:L], ())):
                    district, s, dshort = d, s[L:], s[:L]
                    break
        for marker in ("街道", "镇"):
            i = s.find(marker)
            if i > 0:
                for L in range(min(i, 5), 0, -1):
                    cand = s[i - L: i + len(marker)]
                    if cand in self._streets:
                        street, s = cand, s[: i - L] + s[i + len(marker):]
                        break
                else:  # a 街道 the gazetteer does not know (a typo): dropped, it only narrows
                    if i <= 4 and not _HAS_DIGIT.search(s[:i]):
                        s = s[i + len(marker):]
                break
        if not street:
            for name in self._street_roadlike:  # streets named like roads (阳岭路), written without 街道
                j = s.find(name)
                if j >= 0 and not s[j + len(name): j + len(name) + 1].isdigit():
                    street, s = name, s[:j] + s[j + len(name):]
                    break
        i = s.find("社区")
        if i > 0:
            for L in range(min(i, 6), 0, -1):
                cand = s[i - L: i + 2]
                if cand in self._communities:
                    community, s = cand, s[: i - L] + s[i + 2:]
                    break
            else:  # an unknown 社区 (a typo) at the start: dropped
                if i <= 5 and not _HAS_DIGIT.search(s[:i]):
                    s = s[i + 2:]
        if not district and street and len(self._streets[street]) == 1:
            district = next(iter(self._streets[street]))
        road = number = ""
        for m in _DIGITS.finditer(s):
            p = m.start()
            if p < 2 or s[p - 1] not in self._road_ends:
                continue
            for L in self._road_lens:
                if L > p:
                    continue
                cand = s[p - L: p]
                if cand in self._roads:
                    road, number = cand, m.group(0)
                    after = s[m.end():]
                    sub = _SUBNUM.match(after)
                    if sub:
                        number += "-" + sub.group(1)
                        end = m.end() + sub.end()
                    else:
                        end = m.end() + (1 if after[:1] in ("号", "#") and not after.startswith(("号楼", "#楼")) else 0)
                    s = s[: p - L] + "|" + s[end:]
                    break
            if road:
                break
        if not road:  # a road-like name the gazetteer does not know, or with a typo
            m = _ROADLIKE.search(s)
            if m:
                fixed = self._fuzzy_road(m.group(1), district)
                if fixed:
                    road, number = fixed, m.group(2)
                    note = f"road {m.group(1)} read as {fixed}"
                else:
                    road, number = m.group(1), m.group(2)
                s = s[: m.start()] + "|" + s[m.end():]
        head, building, unit, room = _tail(s)
        head = head.strip("|-#")
        if "|" in head:  # a name written before the road and after it: the one after
            a, _, b = head.partition("|")
            head = b or a
        return Address(district, street, community, road, number, head, building, unit, room), note, dshort

    def _fuzzy_road(self, text: str, district: str) -> str:
        """The known road one substitution or transposition away from the end of ``text`` (same
        suffix), if only one is."""
        for L in range(min(len(text), self._road_max), 2, -1):
            t = text[-L:]
            hits = set()
            for v in _deletes(t[:-1]):
                for r in self._road_del.get(v + t[-1], ()):
                    if len(r) == L and _one_typo(t, r) and (not district or district in self._roads[r]):
                        hits.add(r)
            if hits:
                return next(iter(hits)) if len(hits) == 1 else ""
        return ""

    # ------------------------------------------------------------------ matching
    def _within(self, keys, district: str, community: str, road: str) -> list[str]:
        """The compounds among ``keys`` inside the named district, community (or 街道) and road."""
        out = [k for k in keys if not district or self._comp[k]["district"] == district]
        if road:
            on = [k for k in out if road in self._comp[k]["roads"]]
            out = on or ([] if any(self._comp[k]["roads"] for k in out) else out)
        if community:
            field = "community" if community.endswith(("社区", "居委会", "村委会")) else "street"
            out = [k for k in out if self._comp[k][field] == community]
        return out

    def _compounds(self, name: str, district: str, community: str, road: str) -> tuple[list[str], float, str]:
        """Compounds a written name may be, within the block (district, community, road): keys, score, note."""
        if name.startswith("在") and len(name) >= 3:  # "在丰芳家园": at 丰芳家园
            got = self._compounds(name[1:], district, community, road)
            if got[0]:
                return got
        phase = _PHASE.search(name)
        core = _core(name)
        swap = name[len(core):] in _SWAP if name.startswith(core) else False

        def by_core(c: str) -> list[str]:
            return [k for k in self._by_core.get(c, ()) if not phase or self._comp[k]["name"].endswith(phase.group(0))
                    or not any(self._comp[j]["name"].endswith(phase.group(0)) for j in self._by_core.get(c, ()))]

        out = self._within(self._by_name.get(name, ()), district, community, road)
        if out:
            # the same words may be another compound written without its kind (海月雅苑 for 海月雅苑花园)
            out = sorted(set(out) | set(self._within(self._by_core.get(name, ()), district, community, road)))
            if swap:  # 丰芳花园 written for 丰芳家园: every compound of that core and a swappable kind
                more = [k for k in self._within(by_core(core), district, community, road)
                        if self._comp[k]["name"][len(core):].lstrip("0123456789期") in _SWAP]
                out = sorted(set(out) | set(more))
            return out, 100.0, ""
        kind = name[len(core):] if name.startswith(core) else ""
        # the name written without its kind (丰芳 for 丰芳家园), or with a generic one (丰芳小区)
        for c in ((name, core) if not kind or kind in _SWAP else (name,)):
            out = self._within(by_core(c), district, community, road)
            if out:
                if kind in _SWAP[:2]:  # 花园/家园: the swappable kinds first
                    pref = [k for k in out if self._comp[k]["name"][len(c):].lstrip("0123456789期") in _SWAP]
                    out = pref or out
                return out, 95.0, ""
        local = self._comp_by_area.get(community, ()) if community else ()
        if local:  # inside a named community or 街道: one typo also in a short name (水湖苑 for 水安苑)
            bare = _PHASE.sub("", name)
            out = [k for k in local if (not district or self._comp[k]["district"] == district) and (
                _one_typo(name, self._comp[k]["name"]) or _one_typo(bare, _PHASE.sub("", self._comp[k]["name"]))
                or (core == name and _one_typo(core, self._comp[k]["core"])))]
            if out:
                return out, 85.0, f"compound {name} read as {self._comp[out[0]]['name']}"
        keys = set()
        for form in {core, _PHASE.sub("", name)}:
            if len(form) >= 4:  # one substitution or one transposition, never more
                for v in _deletes(form):
                    keys.update(k for k, f in self._by_del.get(v, ()) if _one_typo(form, f))
        if keys:
            out = self._within(sorted(keys), district, community, road)
            if phase and len(out) > 1:
                out = [k for k in out if self._comp[k]["name"].endswith(phase.group(0))] or out
            if out:
                return out, 85.0, f"compound {name} read as {self._comp[out[0]]['name']}"
        for L in range(len(name) - 1, 3, -1):  # extra words before or after a known name
            for n in (name[-L:], name[:L]):
                if n in self._by_name:
                    return self._compounds(n, district, community, road)
        for L in (2, 3):  # a district's or 街道's short name glued in front (沙头角丽晶水岸)
            if len(name) - L >= 2 and (name[:L] in self._dshort or name[:L] in self._streets_short):
                got = self._compounds(name[L:], district, community, road)
                if got[0]:
                    return got
        bare = _PHASE.sub("", name)
        if bare and bare[-1] in _KIND_SLIP:  # 嘉信院 for 嘉信苑
            fixed = bare[:-1] + _KIND_SLIP[bare[-1]] + name[len(bare):]
            got = self._compounds(fixed, district, community, road)
            if got[0]:
                return got[0], min(got[1], 90.0), f"compound {name} read as {self._comp[got[0][0]]['name']}"
        return [], 0.0, ""

    def match_one(self, text: str) -> Match:
        """Match one address (see the module docstring for the order of attempts).

        Parameters
        ----------
        text
            A raw address.

        Returns
        -------
        Match
            The point, its precision (one of :data:`LEVELS`, or ``failed``), a score (100:
            every name as written; less: a name read through a typo or an alias), the reason
            or notes, and the radius in metres the true point may lie within.
        """
        a, note, dshort = self._parse(text)
        if not (a.district or a.road or a.compound or a.community or a.street):
            return Match(*_FAILED, note or "no district, road, compound or community recognised in the address")
        notes = [note] if note else []
        score = 90.0 if note else 100.0
        if a.road and a.road in self._roads:
            m = self._by_number(a, score, notes)
            if m is not None:
                return m
        elif a.road:
            notes.append(f"road {a.road} not in the gazetteer")
        m = self._by_compound(a, [a.district] if a.district else [], score, notes)
        if m is None and dshort and a.compound:  # 宝安小区: the name starts with the district's short name
            m = self._by_compound(a._replace(compound=dshort + a.compound), [a.district], score, [])
        if m is not None:
            return m
        if a.community:
            hits = [k for k in self._levels["community"] if k[1] == a.community and (not a.district or k[0] == a.district)]
            if len(hits) == 1:
                return Match(*self._levels["community"][hits[0]], "community", score, "; ".join(notes))
        if a.district:
            return Match(*self._levels["district"][(a.district,)], "district", score, "; ".join(notes))
        if not notes:
            notes.append(f"compound {a.compound} not in the gazetteer" if a.compound else
                         "nothing in the address is in the gazetteer")
        return Match(*_FAILED, "; ".join(notes))

    def _by_number(self, a: Address, score: float, notes: list[str]) -> Match | None:
        districts = [d for d in self._roads[a.road] if not a.district or d == a.district]
        if not districts:
            notes.append(f"road {a.road} is not in {a.district} in the gazetteer")
            return None
        hits = [d for d in districts if (d, a.road, a.number) in self._num]
        if len(hits) > 1 and a.compound:
            keys, _, _ = self._compounds(a.compound, "", a.community or a.street, a.road)
            hits = [d for d in hits if any(self._comp[k]["district"] == d for k in keys)] or hits
        if len(hits) > 1 and (a.community or a.street):
            hits = [d for d in hits if a.community in self._num[(d, a.road, a.number)][4]
                    or a.street in self._num[(d, a.road, a.number)][5]] or hits
        if len(hits) > 1:
            notes.append(f"{a.road}{a.number}号 is in {len(hits)} districts ({', '.join(hits)}) and the address names none")
            return None
        if hits:
            k = (hits[0], a.road, a.number)
            la, lo, rad, nb, _, _ = self._num[k]
            ckeys = self._num_ckeys[k]
            if a.compound and len(ckeys) > 1:  # two compounds behind one number: the one named
                keys = [c for c in self._compounds(a.compound, hits[0], "", a.road)[0] if c in ckeys]
                bs = [self._comp_b[(c, a.building)] for c in keys if (c, a.building) in self._comp_b]
                if len(bs) == 1:
                    return Match(bs[0][0], bs[0][1], "building", score, "; ".join(notes), bs[0][2])
            if a.building:
                b = self._num_b.get((*k, a.building))
                if b is not None:
                    return Match(b[0], b[1], "building", score, "; ".join(notes), b[2])
                if len(ckeys) > 1 and a.compound:  # two phases behind one number
                    keys = [c for c in self._compounds(a.compound, hits[0], "", a.road)[0] if c in ckeys]
                    bs = [self._comp_b[(c, a.building)] for c in keys if (c, a.building) in self._comp_b]
                    if len(bs) == 1:
                        return Match(bs[0][0], bs[0][1], "building", score, "; ".join(notes), bs[0][2])
                notes.append(f"building {a.building} of {a.road}{a.number}号 not in the gazetteer")
            elif nb == 1:
                return Match(la, lo, "building", score, "; ".join(notes), rad)
            return Match(la, lo, "house_number", score, "; ".join(notes), rad)
        if len(districts) > 1 and not a.compound:
            notes.append(f"road {a.road} is in {len(districts)} districts and the address names none")
            return None
        # the number is not in the gazetteer: the compound on that road, else the neighbouring numbers
        m = self._by_compound(a, districts, score, notes)
        if m is not None:
            return m
        if len(districts) == 1 and a.number.isdigit():
            m = self._interpolate(districts[0], a.road, int(a.number), score, notes)
            if m is not None:
                return m
            notes.append(f"{a.road}{a.number}号 not in the gazetteer, nor two numbers around it on that side")
            la, lo, rad = self._road_pts[(districts[0], a.road)]
            return Match(la, lo, "road", score, "; ".join(notes), rad)
        notes.append(f"{a.road}{a.number}号 not in the gazetteer")
        return None

    def _by_compound(self, a: Address, districts: list[str], score: float, notes: list[str]) -> Match | None:
        if not a.compound:
            return None
        keys: list[str] = []
        sc, note = 100.0, ""
        for d in districts or [""]:
            k, sc, note = self._compounds(a.compound, d, a.community or a.street, a.road if a.road in self._roads else "")
            keys += k
        if not keys:
            notes.append(f"compound {a.compound} not in the gazetteer" + (f" on {a.road}" if a.road else ""))
            return None
        if note:
            notes.append(note)
        score = min(score, sc)
        if len(keys) == 1:
            c = self._comp[keys[0]]
            la, lo, rad = c["lat"], c["lon"], c["radius"]
        else:
            la, lo, rad = _group_point(self._lat, self._lon, [r for k in keys for r in self._comp[k]["rows"]])
            if rad > 200.0 and a.building:
                # a compound whose buildings stop before the one named cannot be it (18栋 is not in 1栋-6栋)
                fit = [k for k in keys if self._comp[k]["top"] and _bkey_order(a.building) <= self._comp[k]["top"].get(
                    a.building.isdigit(), (0, ""))]
                if fit and len(fit) < len(keys):
                    la2, lo2, rad2 = _group_point(self._lat, self._lon, [r for k in fit for r in self._comp[k]["rows"]])
                    if len(fit) == 1 or rad2 <= 200.0:
                        notes.append(f"{a.compound}: only {len(fit)} of the {len(keys)} compounds of that name has "
                                     f"buildings up to {a.building}")
                        keys, la, lo, rad = fit, la2, lo2, rad2
                        score = min(score, 90.0)
            if rad > 200.0:
                names = sorted({f"{self._comp[k]['district']}{self._comp[k]['name']}" for k in keys})
                notes.append(f"ambiguous: {a.compound} fits {len(keys)} compounds ({', '.join(names[:3])}"
                             f"{', ...' if len(names) > 3 else ''}) up to {2 * rad:.0f} m apart")
                return Match(*_FAILED, "; ".join(notes))
        if a.building:
            bs = [self._comp_b[(k, a.building)] for k in keys if (k, a.building) in self._comp_b]
            if len(bs) == 1:
                return Match(bs[0][0], bs[0][1], "building", score, "; ".join(notes), bs[0][2])
            notes.append(f"building {a.building} of {self._comp[keys[0]]['name']} " +
                         ("not in the gazetteer" if not bs else f"in {len(bs)} of its phases"))
        return Match(la, lo, "compound", score, "; ".join(notes), rad)

    def _interpolate(self, d: str, road: str, n: int, score: float, notes: list[str]) -> Match | None:
        side = self._sides.get((d, road, n % 2))
        if side is None:
            return None
        nums, la, lo = side
        j = int(np.searchsorted(nums, n))
        if j == 0 or j == len(nums):
            return None
        gap = float(_dist_m(la[j - 1], lo[j - 1], la[j], lo[j]))
        t = (n - nums[j - 1]) / (nums[j] - nums[j - 1])
        lat = float(la[j - 1] + t * (la[j] - la[j - 1]))
        lon = float(lo[j - 1] + t * (lo[j] - lo[j - 1]))
        notes.append(f"{road}{n}号 not in the gazetteer: placed between {int(nums[j - 1])}号 and {int(nums[j])}号 "
                     f"({gap:.0f} m apart)")
        return Match(lat, lon, "nearest_house_number", score, "; ".join(notes), gap / 2)

    def match(self, texts) -> pd.DataFrame:
        """Match addresses.

        Parameters
        ----------
        texts
            Raw addresses (a sequence or Series).

        Returns
        -------
        pandas.DataFrame
            ``lat, lon, precision, score, reason, radius_m``, one row per text, in input order.
            Each distinct text is matched once.
        """
        codes, uniques = pd.factorize(pd.Series(texts, dtype="object").fillna("").astype(str))
        res = pd.DataFrame([self.match_one(t) for t in uniques], columns=list(Match._fields))
        return res.iloc[codes].reset_index(drop=True)
