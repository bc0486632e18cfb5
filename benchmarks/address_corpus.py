"""A messy Shenzhen address corpus with ground truth, and building-level gazetteers.

The city is laid out on real Shenzhen names: the ten districts and their real 街道, real road
names of each district (some names, such as 人民路 or 建设路, exist in two districts), house
numbers running along each road (odd on one side, even on the other, as the 门牌 are), and on
those numbers residential compounds (小区/花园/苑/城/大厦 ..., with phases 一期/二期 and names
repeated across districts), single buildings with or without a 大厦 name, and urban villages
whose houses are numbered along lanes (坊/巷). The gazetteer is a standard address library: one
row per building, ``广东省深圳市{区}{街道}{社区}{路}{号}{小区}{栋}``, with the building's point.

Customers are written by several kinds of writers, each with its own habits:

dev styles (used while developing the parser)
    ``form``        a customer on a web form: prefixes in any subset, road + number, compound,
                    building, unit, room, sometimes spaces or full-width digits;
    ``agent``       an agent in a hurry: road + number only, compound + 3-2-1102, 3#, names
                    without their 花园/小区, homophone typos;
    ``transcript``  a call-centre transcript: spoken numerals (十八号, 三栋, 幺幺零二), fillers
                    (那个, 就是), district without 区, "靠近 ..." landmarks;
    ``registry``    copied from another system: the standard form with 街道 and 社区.
held-out styles (reported separately; not looked at while developing)
    ``label``       an express-delivery label: recipient name, mobile number, postcode around it;
    ``reverse``     comma-separated from the room up to the city;
    ``latin``       romanised (pinyin / English): no Chinese parser can read these, they must be refused.

Run ``python benchmarks/address_corpus.py --out DIR`` to write ``customers.csv`` (``customer_id``,
``address``, ``workload``, ``style``, ``lat``, ``lon`` = the truth) and ``gazetteer_{0,5,20}.csv``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

DEV_STYLES = ("form", "agent", "transcript", "registry")
HELD_OUT_STYLES = ("label", "reverse", "latin")
STYLE_SHARE = {"form": 0.30, "agent": 0.24, "transcript": 0.18, "registry": 0.06, "label": 0.12, "reverse": 0.095,
               "latin": 0.005}

# district: (centre lat, lon, pinyin, real 街道, real roads)
DISTRICTS = {
    "福田区": (22.541, 114.055, "Futian", "园岭 南园 福田 沙头 香蜜湖 梅林 莲花 华富 福保 华强北",
            "深南大道 滨河大道 红荔路 华强北路 华富路 彩田路 益田路 新洲路 福华路 福中路 金田路 皇岗路 香蜜湖路 农林路 "
            "侨香路 景田路 莲花路 上步路 燕南路 八卦路 泥岗西路 梅林路 北环大道 福强路 沙嘴路 石厦北街 振华路 中康路"),
    "罗湖区": (22.548, 114.131, "Luohu", "桂园 黄贝 东门 翠竹 南湖 笋岗 东湖 莲塘 东晓 清水河",
            "深南东路 人民南路 解放路 建设路 和平路 春风路 爱国路 翠竹路 太宁路 布心路 东湖路 沙湾路 文锦路 罗沙路 "
            "莲塘路 宝安南路 东门路 笋岗路 宝岗路 嘉宾路 黄贝路 凤凰路 延芳路 红岭中路 新秀路 田贝一路"),
    "南山区": (22.533, 113.930, "Nanshan", "南头 南山 沙河 蛇口 招商 粤海 桃源 西丽",
            "南海大道 科技南路 科苑路 高新南一道 学府路 桃园路 南新路 南山大道 前海路 后海大道 创业路 登良路 "
            "工业八路 沙河西路 白石路 侨城东路 留仙大道 西丽路 茶光路 深南大道 东滨路 海德三道 龙珠大道 月亮湾大道 "
            "沙河东路 兴海大道 望海路 蛇口新街 南光路 中心路"),
    "宝安区": (22.555, 113.883, "Bao'an", "新安 西乡 航城 福永 福海 沙井 新桥 松岗 燕罗 石岩",
            "宝安大道 新安六路 创业一路 前进路 建安一路 裕安路 宝民路 松白路 沙井路 福永大道 新湖路 洪浪北路 "
            "兴华路 宝城路 公园路 建设路 民治路 西乡大道 固戍路 航城大道 新沙路 翻身路 裕安二路 上川路 中心路"),
    "龙岗区": (22.721, 114.247, "Longgang", "平湖 坪地 布吉 坂田 南湾 横岗 龙城 龙岗 吉华 宝龙 园山",
            "龙岗大道 深惠路 龙城大道 布吉路 吉华路 康乐南路 水径路 坂雪岗大道 五和大道 爱联路 龙翔大道 "
            "中心城路 黄阁路 清林路 宝龙大道 横岗大道 平湖大街 布沙路 丹竹头路 德政路 龙福路 人民路 和平路"),
    "龙华区": (22.696, 114.045, "Longhua", "观湖 民治 龙华 大浪 福城 观澜",
            "民治大道 人民路 梅龙路 东环一路 和平路 建设路 龙华大道 布龙路 龙观路 民康路 观澜大道 华昌路 "
            "工业路 三联路 牛栏前路 民乐路 油松路 腾龙路 新区大道 华荣路"),
    "盐田区": (22.557, 114.237, "Yantian", "沙头角 海山 盐田 梅沙",
            "盐田路 深盐路 海景二路 沙盐路 东海道 北山道 明珠道 大梅沙环梅路 梧桐路 海涛路 永安路 盐梅路"),
    "光明区": (22.749, 113.936, "Guangming", "光明 公明 新湖 凤凰 玉塘 马田",
            "光明大道 华夏路 观光路 公明大道 光侨路 东长路 塘明大道 松白公路 凤凰路 光辉大道 长春路 玉律路"),
    "坪山区": (22.708, 114.346, "Pingshan", "坪山 马峦 碧岭 石井 坑梓 龙田",
            "坪山大道 深汕路 东纵路 金碧路 丹梓大道 坑梓路 马峦路 碧岭路 锦龙大道 兰竹路 龙勤路 体育一路"),
    "大鹏新区": (22.593, 114.478, "Dapeng", "葵涌 大鹏 南澳",
             "葵鹏路 鹏飞路 迎宾路 金岭路 葵新路 南澳大道 水头路 布新路 中山路"),
}
ROAD_PINYIN = {"深南大道": "Shennan Avenue", "科技南路": "Keji South Road", "华强北路": "Huaqiang North Road",
               "滨河大道": "Binhe Avenue", "南海大道": "Nanhai Avenue", "宝安大道": "Bao'an Avenue",
               "龙岗大道": "Longgang Avenue", "民治大道": "Minzhi Avenue", "红荔路": "Hongli Road", "益田路": "Yitian Road"}

# compound names: a first part (place words, wishes) and a kind
CMP_HEAD = ("丰芳 宁豪 碧海 阳光 金地 万科 华润 中海 招商 星河 龙光 卓越 佳兆业 彩田 景田 莲花 梅林 香蜜 翠竹 "
            "桂园 锦绣 丽景 海滨 蔚蓝 半岛 城市 天健 金众 鸿瑞 嘉信 东方 怡景 泰华 宝安 丽晶 新天 星海 名门 "
            "缤纷 华府 御景 翡翠 玉湖 月亮湾 南海 前海 桃源 龙珠 荔香 西丽 茶光 鼎太 风华 海月 海印 金桂 "
            "百花 园岭 红荔 振业 天安 中信 益田 福华 皇庭 金海 水榭 春天 紫荆 新洲 海悦 鹏兴 君悦 凯丰 "
            "明月 雅园 富通 鸿景 星语 银湖 四季 东海 枫丹 锦城 天骄 康达 永安 长城 南山 宏发 华侨 世纪").split()
CMP_MID = ("江南 丹堤 雅苑 明珠 新城 海岸 山水 湖畔 半山 御园 天地 国际 时代 公园 翠苑 春天 绿洲 水岸 豪园 碧园 "
           "东方 南国 金域 星城 华庭 丽都 雍景 嘉园 一号 荔园 枫林 翠湖 香山 云峰 蓝湾 海景 阳光 君临 滨海").split()
CMP_KIND = "花园 小区 家园 苑 名苑 华庭 豪庭 雅居 新村 公寓 大厦 广场 山庄 府 城 雅苑 居 嘉园 花城 公馆".split()
BLOCK_LETTERS = "ABCDEFGH"
VILLAGE_HEAD = "水径 岗厦 白石洲 上沙 下沙 新洲 石厦 沙尾 皇岗 渔农 湖贝 向西 大冲 南头 西丽 布吉 坂田 横岗 民治 观澜".split()
COMMUNITY_HEAD = ("景田 莲花 华富 梅林 园岭 沙头 福保 南园 翠竹 东湖 莲塘 黄贝 粤海 桃源 蛇口 招商 西丽 南头 新安 "
                  "西乡 福永 沙井 布吉 坂田 横岗 龙城 民治 观澜 大浪 盐田 梅沙 光明 公明 坪山 坑梓 葵涌 南澳 "
                  "新村 上围 下围 松坪 丽山 海月 荔林 大新 向南 月亮湾 水湾 湾厦 赤湾 龙苑 碧新 万福 锦华").split()
HOMOPHONE = dict(zip("园苑华景湾岭峰庭翠丽新城福田龙湖锦豪轩雅泰芳豪海景路花",
                     "圆院花境弯领锋亭萃莉心成富甜隆糊金好宣亚太方浩嗨井陆华"))
CN_DIGIT = "零一二三四五六七八九"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"


# village names are unique in the city (they are the old place names): 水径村, 岗厦新村, ...
VILLAGE_NAMES = [h + k for k in ("村", "新村", "老村") for h in VILLAGE_HEAD + [c for c in COMMUNITY_HEAD if c not in VILLAGE_HEAD]]
VILLAGE_NAMES = [VILLAGE_NAMES[i] for i in np.random.default_rng(7).permutation(len(VILLAGE_NAMES))[:90]]


def _cn(n: int, spoken: bool = False) -> str:
    """An integer in Chinese numerals (十八, 一百零三, 二千零一十) up to 9999."""
    if n == 0:
        return "零"
    if n < 10:
        return ("两" if spoken and n == 2 and False else CN_DIGIT[n])
    if n < 20:
        return "十" + (CN_DIGIT[n % 10] if n % 10 else "")
    out, zero = "", False
    for unit, div in (("千", 1000), ("百", 100), ("十", 10), ("", 1)):
        d = (n // div) % 10
        if d:
            if zero and out:
                out += "零"
            out += CN_DIGIT[d] + unit
            zero = False
        elif out:
            zero = True
    return out


def _digits_spoken(s: str) -> str:
    """A room number read digit by digit, 1 as 幺 (1102 -> 幺幺零二)."""
    return "".join("幺" if c == "1" else CN_DIGIT[int(c)] if c.isdigit() else c for c in s)


def _offset(lat: float, lon: float, dx_m: float, dy_m: float) -> tuple[float, float]:
    return lat + dy_m / 111_320.0, lon + dx_m / (111_320.0 * math.cos(math.radians(lat)))


def build_city(seed: int = 0) -> pd.DataFrame:
    """The buildings of the city, one row each, with every part of their standard address."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    used_cmp: dict[str, set] = {}
    villages: list[str] = []
    for d, (clat, clon, dpy, streets, roads) in DISTRICTS.items():
        streets, roads = streets.split(), roads.split()
        street_xy = {s: (rng.uniform(-4500, 4500), rng.uniform(-4500, 4500)) for s in streets}
        comms = {}
        for s in streets:
            heads = rng.choice(COMMUNITY_HEAD, size=int(rng.integers(3, 6)), replace=False)
            comms[s] = [f"{h}社区" for h in heads]
        used_cmp[d] = set()
        for road in roads:
            # a straight road through a random point of the district
            x0, y0 = rng.uniform(-5000, 5000), rng.uniform(-5000, 5000)
            ang = rng.uniform(0, math.pi)
            length = rng.uniform(1500, 6000)
            maxnum = int(rng.choice([300, 800, 2000, 6000]))
            per = length / maxnum
            nums = np.sort(rng.choice(np.arange(1, maxnum + 1), size=int(rng.integers(12, 30)), replace=False))
            for num in nums:
                t = num * per - length / 2
                side = 1 if num % 2 else -1
                gx, gy = x0 + t * math.cos(ang), y0 + t * math.sin(ang)
                nx, ny = -math.sin(ang) * side, math.cos(ang) * side
                # street and community: the nearest street centre of the district
                s = min(streets, key=lambda k: (street_xy[k][0] - gx) ** 2 + (street_xy[k][1] - gy) ** 2)
                c = comms[s][int(rng.integers(len(comms[s])))]
                base = dict(district=d, street=s + "街道", community=c, road=road, number=str(int(num)))
                kind = rng.random()
                if kind < 0.62:  # a residential compound behind the gate
                    for _ in range(50):
                        # a brand or place word, often with a second word (锦绣 + 江南, 星河 + 丹堤)
                        head = rng.choice(CMP_HEAD)
                        if rng.random() < 0.75:
                            head += rng.choice(CMP_MID)
                        name = head + rng.choice(CMP_KIND)
                        if name not in used_cmp[d]:
                            break
                    used_cmp[d].add(name)
                    phases = [""] if rng.random() < 0.85 else ["一期", "二期"]
                    for pi, ph in enumerate(phases):
                        nb = int(rng.choice([1, 2, 4, 6, 8, 12, 18, 26], p=[.12, .12, .18, .18, .15, .12, .08, .05]))
                        depth = rng.uniform(30, 90) + pi * 120
                        cx, cy = gx + nx * depth, gy + ny * depth
                        spacing = rng.uniform(22, 38)
                        cols = max(1, int(math.ceil(math.sqrt(nb))))
                        style = rng.choice(["digit", "letter", "haolou", "zuo"], p=[.6, .15, .13, .12])
                        if style == "letter" and nb > 8:
                            style = "digit"
                        letter_kind = "座" if rng.random() < 0.5 else "栋"
                        pnum = base["number"] if pi == 0 else str(int(num) + 2 * pi)
                        for b in range(nb):
                            r_, c_ = divmod(b, cols)
                            bx = cx + (c_ - (cols - 1) / 2) * spacing + rng.normal(0, 3)
                            by = cy + (r_ - (cols - 1) / 2) * spacing + rng.normal(0, 3)
                            lab = (f"{BLOCK_LETTERS[b]}{letter_kind}" if style == "letter" else
                                   {"digit": f"{b + 1}栋", "haolou": f"{b + 1}号楼", "zuo": f"{b + 1}座"}[style])
                            lat, lon = _offset(clat, clon, bx, by)
                            rows.append({**base, "number": pnum, "compound": name + ph, "building": lab,
                                         "lat": lat, "lon": lon, "kind": "compound", "dpy": dpy})
                elif kind < 0.84:  # one building on the road, often a named 大厦
                    name = (rng.choice(CMP_HEAD) + rng.choice(["大厦", "商务中心", "大楼", "中心"])) if rng.random() < 0.6 else ""
                    lat, lon = _offset(clat, clon, gx + nx * 15, gy + ny * 15)
                    rows.append({**base, "compound": name, "building": "", "lat": lat, "lon": lon, "kind": "single", "dpy": dpy})
                elif kind < 0.92:  # several unnamed buildings on one number (康乐南路53号4栋)
                    nb = int(rng.integers(2, 7))
                    for b in range(nb):
                        lat, lon = _offset(clat, clon, gx + nx * (20 + 25 * (b // 3)), gy + ny * 20 + 25 * (b % 3))
                        rows.append({**base, "compound": "", "building": f"{b + 1}栋", "lat": lat, "lon": lon,
                                     "kind": "numbered", "dpy": dpy})
                elif kind < 0.95 and len(villages) < len(VILLAGE_NAMES):  # an urban village, its houses on lanes
                    vname = VILLAGE_NAMES[len(villages)]
                    villages.append(vname)
                    for lane in range(1, int(rng.integers(3, 9))):
                        lname = rng.choice([f"{_cn(lane)}巷", f"{_cn(lane)}坊", f"东{_cn(lane)}巷"])
                        for h in range(1, int(rng.integers(4, 14))):
                            lat, lon = _offset(clat, clon, gx + nx * (30 + 12 * h), gy + ny * (30 + 12 * h) + lane * 14)
                            rows.append({**base, "road": vname + lname, "number": str(h), "compound": "", "building": "",
                                         "lat": lat, "lon": lon, "kind": "village", "dpy": dpy, "village": vname,
                                         "lane": lname})
    city = pd.DataFrame(rows)
    city["village"] = city.get("village", pd.Series(dtype=object)).fillna("")
    city["lane"] = city.get("lane", pd.Series(dtype=object)).fillna("")
    city = city.drop_duplicates(["district", "road", "number", "compound", "building"]).reset_index(drop=True)
    city["address"] = ("广东省深圳市" + city["district"] + city["street"] + city["community"] + city["road"]
                       + city["number"] + "号" + city["compound"] + city["building"])
    city["building_id"] = np.arange(len(city))
    return city


def gazetteer(city: pd.DataFrame, missing: float, seed: int = 0) -> pd.DataFrame:
    """The standard address library with ``missing`` of its buildings left out at random."""
    rng = np.random.default_rng(seed + 1000)
    keep = rng.random(len(city)) >= missing
    g = city.loc[keep, ["address", "lat", "lon"]].copy()
    g["lat"], g["lon"] = g["lat"].round(7), g["lon"].round(7)
    return g.reset_index(drop=True)


# --------------------------------------------------------------------------- #
# Writers                                                                     #
# --------------------------------------------------------------------------- #


def _typo(rng, s: str, p: float) -> str:
    if rng.random() >= p:
        return s
    idx = [i for i, ch in enumerate(s) if ch in HOMOPHONE]
    if not idx:
        return s
    i = int(rng.choice(idx))
    return s[:i] + HOMOPHONE[s[i]] + s[i + 1:]


def _short_compound(rng, name: str) -> str:
    """What people call a compound: often without its kind, or with another one."""
    for k in sorted(CMP_KIND, key=len, reverse=True):
        if name.endswith(k) and len(name) > len(k) + 1:
            r = rng.random()
            if r < 0.5:
                return name[: -len(k)]
            if r < 0.7 and k in ("花园", "家园", "小区"):
                return name[: -len(k)] + ("小区" if k != "小区" else "花园")
            return name
    return name


def _bld(rng, lab: str, style: str) -> str:
    """Building label as written: 3栋 / 3幢 / 3座 / 3号楼 / 3# / 三栋 / A座."""
    if not lab:
        return ""
    core = lab[:-2] if lab.endswith("号楼") else lab[:-1]
    if core.isdigit():
        n = int(core)
        if style == "transcript":
            return _cn(n) + rng.choice(["栋", "栋", "号楼", "座"])
        return core + rng.choice(["栋", "栋", "栋", "幢", "座", "号楼", "#", "#楼", "栋"] if style == "agent" else
                                 ["栋", "栋", "栋", "幢", "座", "号楼", "栋"])
    return core + rng.choice(["座", "栋", "座"]) if style != "agent" else core + rng.choice(["座", "栋", ""])


def _room(rng, nfloor_max: int = 33) -> tuple[int, int, str]:
    floor = int(rng.integers(1, nfloor_max))
    unit = int(rng.integers(1, 5))
    room = f"{floor}{int(rng.integers(1, 9)):02d}"
    return floor, unit, room


def write_address(rng, b: pd.Series, style: str) -> str:
    d, s, c, road, num, cmpd, lab = b.district, b.street, b.community, b.road, b.number, b.compound, b.building
    floor, unit, room = _room(rng)
    if b.kind in ("single", "village"):
        room = f"{floor}{int(rng.integers(1, 5)):02d}" if rng.random() < 0.7 else ""
    dshort = d[:-1] if not d.endswith("新区") else d[:-2]
    if style == "latin":
        rd = ROAD_PINYIN.get(road, "Shennan Avenue")
        return rng.choice([f"No. {num} {rd}, {b.dpy} District, Shenzhen", f"{num} {rd}, {b.dpy}, Shenzhen, Guangdong",
                           f"Flat {room}, {num} {rd}, Shenzhen"])
    if style == "registry":
        txt = f"{d}{s}{c}{road}{num}号{cmpd}{lab}"
        if rng.random() < 0.5:
            txt = "深圳市" + txt
        return txt + (f"{room}室" if room and rng.random() < 0.5 else "")
    use_road = True
    use_cmp = bool(cmpd)
    if cmpd and b.kind == "compound":
        r = rng.random()
        if style == "agent":
            use_road, use_cmp = (True, False) if r < 0.25 else (False, True) if r < 0.6 else (True, True)
        else:
            use_road, use_cmp = (True, False) if r < 0.12 else (False, True) if r < 0.4 else (True, True)
    elif cmpd:  # a named single building
        use_cmp = rng.random() < 0.6
        use_road = not use_cmp or rng.random() < 0.7
    if b.kind == "village":
        use_road, use_cmp = True, False
    if style == "form":
        parts = []
        if rng.random() < 0.45:
            parts.append(rng.choice(["广东省", "广东", "广东省"]))
        if rng.random() < 0.8:
            parts.append(rng.choice(["深圳市", "深圳市", "深圳"]))
        if rng.random() < 0.85:
            parts.append(d if rng.random() < 0.9 else dshort)
        if rng.random() < 0.12:
            parts.append(s if rng.random() < 0.7 else s[:-2])
        if rng.random() < 0.05:
            parts.append(c)
        if use_road:
            r = road if b.kind != "village" or rng.random() < 0.6 else b.village + b.lane
            parts.append(f"{_typo(rng, r, 0.03)}{num}号")
        if use_cmp:
            parts.append(_typo(rng, cmpd if rng.random() < 0.8 else _short_compound(rng, cmpd), 0.04))
        if lab:
            parts.append(_bld(rng, lab, style))
        if lab and rng.random() < 0.35:
            parts.append(f"{unit}单元")
        if room and rng.random() < 0.9:
            parts.append(room + rng.choice(["室", "室", "", "房", "号"]))
        sep = rng.choice(["", "", "", " "])
        txt = sep.join(parts)
        if rng.random() < 0.08:
            txt = txt.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        return txt
    if style == "agent":
        parts = []
        if rng.random() < 0.35:
            parts.append(dshort if rng.random() < 0.5 else d)
        if use_road:
            sep_no = rng.choice(["号", "号", "号", "", "#"]) if use_cmp else rng.choice(["号", "号", "号", " ", "-"]) if (lab or room) else "号"
            parts.append(f"{_typo(rng, road, 0.05)}{num}{sep_no}")
        if use_cmp:
            parts.append(_typo(rng, _short_compound(rng, cmpd), 0.08))
        if lab and room and rng.random() < 0.4 and lab[:-1].isdigit():
            core = lab[:-2] if lab.endswith("号楼") else lab[:-1]
            parts.append(f"{core}-{unit}-{room}" if rng.random() < 0.5 else f"{core}-{room}")
        else:
            if lab and rng.random() < 0.93:
                parts.append(_bld(rng, lab, style))
            if room and rng.random() < 0.7:
                parts.append(room)
        return "".join(parts)
    if style == "transcript":
        fill = lambda: rng.choice(["", "", "", "那个", "就是", "嗯", "在"])  # noqa: E731
        parts = [fill()]
        if rng.random() < 0.6:
            parts.append(rng.choice(["深圳", "深圳市", ""]))
        if rng.random() < 0.7:
            parts.append(dshort if rng.random() < 0.6 else d)
        parts.append(fill())
        if use_road:
            n = int(num)
            parts.append(f"{_typo(rng, road, 0.08)}{_cn(n) if n < 1000 and rng.random() < 0.6 else num}号")
        if use_cmp:
            parts.append(fill() + _typo(rng, cmpd if rng.random() < 0.6 else _short_compound(rng, cmpd), 0.12))
        if lab:
            parts.append(_bld(rng, lab, style))
        if lab and rng.random() < 0.3:
            parts.append(f"{_cn(unit)}单元")
        if room and rng.random() < 0.7:
            parts.append(_digits_spoken(room) if rng.random() < 0.5 else room + rng.choice(["", "室", "房"]))
        if rng.random() < 0.15:
            parts.append(rng.choice(["，靠近地铁站", "，旁边有个超市", "（近公交站）", "，门口有保安亭"]))
        return "".join(parts)
    if style == "label":
        name = rng.choice(list(SURNAMES)) + rng.choice(["先生", "女士", "小姐", "生", "总"])
        phone = "1" + str(int(rng.choice([3, 5, 8, 9]))) + "".join(str(int(x)) for x in rng.integers(0, 10, 9))
        body = "广东省 深圳市 " + d + " " + (f"{road}{num}号" if use_road else "") + (cmpd if use_cmp else "") + \
            (_bld(rng, lab, "form") if lab else "") + (room if room else "")
        post = "518" + "".join(str(int(x)) for x in rng.integers(0, 10, 3))
        order = int(rng.integers(3))
        return [f"{name} {phone} {body} {post}", f"{body}，{name}，{phone}", f"收件人:{name} 电话:{phone} 地址:{body}"][order]
    if style == "reverse":
        parts = []
        if room:
            parts.append(room + "室")
        if lab:
            parts.append(_bld(rng, lab, "form"))
        if use_cmp:
            parts.append(cmpd)
        if use_road:
            parts.append(f"{road}{num}号")
        parts.append(d)
        if rng.random() < 0.6:
            parts.append("深圳市")
        return rng.choice([", ", "，", ","]).join(parts)
    raise ValueError(style)


def build_corpus(n: int = 100_000, seed: int = 0, city: pd.DataFrame | None = None) -> pd.DataFrame:
    """``n`` customers: ``customer_id, address, workload, style, building_id, lat, lon`` (the truth)."""
    city = build_city(seed) if city is None else city
    rng = np.random.default_rng(seed + 1)
    # customers per building: more in compounds (many flats), a few in single buildings and villages
    w = np.where(city["kind"] == "compound", 3.0, np.where(city["kind"] == "village", 0.6, 1.5))
    pick = rng.choice(len(city), size=n, p=w / w.sum())
    styles = list(STYLE_SHARE)
    sty = rng.choice(styles, size=n, p=np.array(list(STYLE_SHARE.values())) / sum(STYLE_SHARE.values()))
    recs = city.iloc[pick]
    texts = [write_address(rng, b, s) for b, s in zip(recs.itertuples(index=False), sty)]
    return pd.DataFrame({"customer_id": [f"A{i:07d}" for i in range(n)], "address": texts, "workload": 1.0,
                         "style": sty, "building_id": recs["building_id"].to_numpy(),
                         "lat": recs["lat"].round(7).to_numpy(), "lon": recs["lon"].round(7).to_numpy()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    city = build_city(a.seed)
    build_corpus(a.n, a.seed, city).to_csv(out / "customers.csv", index=False)
    for m in (0, 5, 20):
        gazetteer(city, m / 100, a.seed).to_csv(out / f"gazetteer_{m}.csv", index=False)
    print(f"{len(city)} buildings, {a.n} customers written to {out}")


if __name__ == "__main__":
    main()
