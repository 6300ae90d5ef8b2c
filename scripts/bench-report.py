#!/usr/bin/env python3
"""`make bench`'s report: target/bench/report.html from the bench's own outputs.

Reads target/bench/results.json (scripts/bench.sh), target/bench/forward.json
(scripts/bench-forward.sh), target/bench/open-loop.json (scripts/bench-open-loop.sh),
target/soak/rss.txt (scripts/soak.sh: "second MiB" lines) and target/soak/probe.txt (the
soak's well-behaved client, scripts/soak-probe.py: latency per 10 s window); any of them
may be missing, and its panel then says which command makes it. Writes one
self-contained HTML file: inline CSS and inline SVG charts, no script, nothing fetched.

Panels: (a) each workload beside its anchor (req per server CPU-second, req/s, p99), one
row per workload, each small chart on its own scale; (b) latency against offered load from
the open-loop run (p50/p99/p999 per rate, log scale) and achieved against offered rate;
(c) the proxy's RSS over the soak, and the p99 of another client's misses and forwarded
HGETs per 10 s window beside it. Python 3 standard library only.

Usage: scripts/bench-report.py [--results F] [--forward F] [--open-loop F] [--soak F]
       [--probe F] [--soak-warmup S] [--out F]
"""

import argparse
import datetime
import html
import json
import math
import os

PROXY = "#1f6fb4"  # the proxy's bars and lines
ANCHOR = ["#e07b28", "#7a7a7a"]  # first and second reference
PERCENTILE_DASH = {"p50_us": "", "p99_us": "7 4", "p999_us": "2 3"}
BUSY = "#d62728"  # rings around runs whose server waited for a CPU
# A run whose server spent more than this share of it runnable but waiting for a CPU, or
# whose client sent 1% of its requests later than this, is marked: the machine's other load
# held one side back, and its latencies say more about the machine than about the server.
BUSY_WAIT = 0.10
BUSY_LAG_US = 1000
SERVER_COLOUR = {"proxy": PROXY, "nginx": ANCHOR[0]}


def esc(text):
    return html.escape(str(text), quote=True)


def si(v):
    """1388889 -> 1.39M, 139489 -> 139k, 950 -> 950."""
    v = float(v)
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            x = v / div
            return f"{x:.3g}{unit}" if x < 100 else f"{x:.0f}{unit}"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def duration_us(us):
    """Microseconds as a short human duration: 386 µs, 8.8 ms, 1.6 s."""
    us = float(us)
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.0f} µs"


def nice_step(span, count):
    raw = span / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def linear_ticks(top, count=5):
    """Ticks from 0 to at least `top`: (ticks, axis maximum)."""
    if top <= 0:
        return [0, 1], 1
    step = nice_step(top, count)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)], n * step


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mtime(path):
    try:
        t = os.path.getmtime(path)
    except OSError:
        return "absent"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


# --- (a) workloads beside their anchors ---------------------------------------------------------


def workload_groups(results):
    """Rows with req/s, grouped: a row of the proxy, then the reference rows after it."""
    groups = []
    for r in results:
        if "req_per_s" not in r:
            continue
        if "ref)" in r["name"] and groups:
            groups[-1]["refs"].append(r)
        else:
            groups.append({"main": r, "refs": []})
    return groups


def split_name(name):
    """'resp GET -P 1 (redis-server, ref)' -> ('resp GET -P 1', 'redis-server')."""
    if "(" in name and name.endswith(")"):
        workload, who = name[:-1].split("(", 1)
        return workload.strip(), who.replace(", ref", "").strip()
    return name, ""


def workloads_svg(groups):
    """One block per workload: its name, then one line per server (the proxy first), each
    line with a bar in every metric's column; the proxy's ratios under the block."""
    label_w, col_w, row, pad = 290, 270, 15, 12
    metrics = [
        ("req per server CPU-second", "req_per_cpu_s", si, False),
        ("req/s (what the client saw)", "req_per_s", si, False),
        ("p99 latency", "p99_us", duration_us, True),
    ]
    width = label_w + col_w * len(metrics)
    out = []
    for j, (title, _, _, lower) in enumerate(metrics):
        x = label_w + j * col_w
        out.append(f'<text x="{x}" y="14" class="head">{esc(title)}</text>')
        out.append(f'<text x="{x}" y="28" class="hint">{"lower" if lower else "higher"} is better</text>')
    y = 38
    for g in groups:
        rows = [g["main"]] + g["refs"]
        colours = [PROXY] + ANCHOR[: len(g["refs"])]
        workload, _ = split_name(g["main"]["name"])
        out.append(f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" class="rule"/>')
        y += 5
        out.append(f'<text x="0" y="{y + 11}" class="wl">{esc(workload)}</text>')
        for i, r in enumerate(rows):
            _, who = split_name(r["name"])
            out.append(f'<text x="{label_w - 12}" y="{y + row * i + 11}" class="who" text-anchor="end" '
                       f'fill="{colours[i]}">{esc(who or "proxy")}</text>')
        for j, (_, key, fmt, _) in enumerate(metrics):
            top = max(float(r.get(key) or 0) for r in rows) or 1
            for i, (r, colour) in enumerate(zip(rows, colours)):
                v = float(r.get(key) or 0)
                w = max(1.0, (col_w - 70) * v / top)
                x, by = label_w + j * col_w, y + row * i + 2
                out.append(f'<rect x="{x}" y="{by}" width="{w:.1f}" height="11" fill="{colour}"/>')
                out.append(f'<text x="{x + w + 4:.1f}" y="{by + 10}" class="val">{esc(fmt(v))}</text>')
        y += row * len(rows)
        ratio = g["main"].get("ratio", "")
        if ratio and ratio != "reference":
            out.append(f'<text x="{label_w}" y="{y + 9}" class="hint">proxy: {esc(ratio)}</text>')
            y += 13
        y += pad - 5
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
            f'viewBox="0 0 {width} {y}" role="img" aria-label="workloads beside their anchors">')
    return "\n".join([head] + out + ["</svg>"])


def others_table(results):
    rows = []
    for r in results:
        name = r.get("name", "")
        if name == "memory per key":
            rows.append((name, f'proxy RSS {r["proxy_bytes"]} B/key, Redis used_memory '
                               f'{r["redis_bytes"]} B/key ({r["keys"]:,} keys)'))
        elif name.startswith("invalidation latency"):
            rows.append((name, f'p50 {duration_us(r["p50_us"])}, p99 {duration_us(r["p99_us"])}, '
                               f'p999 {duration_us(r["p999_us"])}, stale answers {r["stale_answers"]} '
                               f'of {r["writes"]} writes'))
        elif name.startswith("write stream"):
            rows.append((name, f'hit ratio {r["hit_ratio"]}, stale reads {r["stale_reads"]:,} of '
                               f'{r["reads"]:,}, Redis CPU {r["redis_cpu_s"]} s'))
    if not rows:
        return ""
    body = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for a, b in rows)
    return f'<table class="data"><tr><th>other results</th><th></th></tr>{body}</table>'


# --- (b) latency against offered load -------------------------------------------------------------


def plot_frame(w, h, m):
    """Chart area inside a w x h svg with margins m = (left, top, right, bottom)."""
    return m[0], m[1], w - m[0] - m[2], h - m[1] - m[3]


def latency_svg(runs):
    w, h = 620, 380
    x0, y0, pw, ph = plot_frame(w, h, (70, 20, 20, 50))
    xticks, xmax = linear_ticks(max(r["rate"] for r in runs))
    values = [r[k] for r in runs for k in PERCENTILE_DASH if r.get(k, 0) > 0]
    lo = 10 ** math.floor(math.log10(max(min(values, default=100), 1)))
    hi = 10 ** math.ceil(math.log10(max(max(values, default=1000), lo * 10)))
    lx = lambda v: x0 + pw * v / xmax  # noqa: E731
    ly = lambda v: y0 + ph - ph * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731,E501
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="latency against offered load">']
    decade = lo
    while decade <= hi:
        for m in (1, 2, 5):
            v = decade * m
            if v > hi:
                break
            y = ly(v)
            cls = "grid" if m == 1 else "grid minor"
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" class="{cls}"/>')
            out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                       f'{esc(duration_us(v))}</text>')
        decade *= 10
    for t in xticks:
        x = lx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + ph}" class="grid minor"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + ph + 16}" class="tick" text-anchor="middle">{si(t)}</text>')
    out.append(f'<text x="{x0 + pw / 2}" y="{h - 8}" class="axis" text-anchor="middle">'
               'offered load, requests/s (fixed rate, open loop)</text>')
    out.append(f'<text x="14" y="{y0 + ph / 2}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 14 {y0 + ph / 2})">latency from the scheduled send (log)</text>')
    for server in ("proxy", "nginx"):
        mine = sorted((r for r in runs if r["server"] == server), key=lambda r: r["rate"])
        if not mine:
            continue
        colour = SERVER_COLOUR.get(server, ANCHOR[1])
        for key, dash in PERCENTILE_DASH.items():
            pts = " ".join(f"{lx(r['rate']):.1f},{ly(r[key]):.1f}" for r in mine)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
            for r in mine:
                out.append(f'<circle cx="{lx(r["rate"]):.1f}" cy="{ly(r[key]):.1f}" r="2.5" fill="{colour}"/>')
                if key == "p50_us" and busy(r):
                    out.append(busy_ring(lx(r["rate"]), ly(r[key])))
    out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" class="frame"/>')
    out.append("</svg>")
    return "\n".join(out)


def achieved_svg(runs):
    w, h = 440, 380
    x0, y0, pw, ph = plot_frame(w, h, (60, 20, 20, 50))
    xticks, xmax = linear_ticks(max(r["rate"] for r in runs))
    lx = lambda v: x0 + pw * v / xmax  # noqa: E731
    ly = lambda v: y0 + ph - ph * v / xmax  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="answered rate against offered rate">']
    for t in xticks:
        out.append(f'<line x1="{lx(t):.1f}" x2="{lx(t):.1f}" y1="{y0}" y2="{y0 + ph}" class="grid minor"/>')
        out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{ly(t):.1f}" y2="{ly(t):.1f}" class="grid minor"/>')
        out.append(f'<text x="{lx(t):.1f}" y="{y0 + ph + 16}" class="tick" text-anchor="middle">{si(t)}</text>')
        out.append(f'<text x="{x0 - 6}" y="{ly(t) + 4:.1f}" class="tick" text-anchor="end">{si(t)}</text>')
    out.append(f'<line x1="{lx(0)}" y1="{ly(0)}" x2="{lx(xmax)}" y2="{ly(xmax)}" class="diag"/>')
    out.append(f'<text x="{x0 + pw / 2}" y="{h - 8}" class="axis" text-anchor="middle">offered, requests/s</text>')
    out.append(f'<text x="14" y="{y0 + ph / 2}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 14 {y0 + ph / 2})">answered, requests/s (start to last answer)</text>')
    for server in ("proxy", "nginx"):
        mine = sorted((r for r in runs if r["server"] == server), key=lambda r: r["rate"])
        if not mine:
            continue
        colour = SERVER_COLOUR.get(server, ANCHOR[1])
        pts = " ".join(f"{lx(r['rate']):.1f},{ly(answered_rate(r)):.1f}" for r in mine)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for r in mine:
            out.append(f'<circle cx="{lx(r["rate"]):.1f}" cy="{ly(answered_rate(r)):.1f}" r="3" fill="{colour}"/>')
            if busy(r):
                out.append(busy_ring(lx(r["rate"]), ly(answered_rate(r))))
    out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" class="frame"/>')
    out.append("</svg>")
    return "\n".join(out)


def busy(r):
    return r.get("server_wait", 0) > BUSY_WAIT or r.get("send_lag_p99_us", 0) > BUSY_LAG_US


def busy_ring(x, y):
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="{BUSY}" stroke-width="1.5"/>'


def answered_rate(r):
    """Answers per second from the start to the last answer (examples/open_loop): the offered
    rate while the server keeps up, its capacity once it falls behind."""
    return r.get("answered_rps", 0)


def open_loop_table(runs):
    head = ("server", "offered/s", "answered/s", "p50", "p90", "p99", "p999", "max", "queued",
            "unanswered", "errors", "client lag p99", "server CPU", "server CPU wait")
    rows = []
    for r in sorted(runs, key=lambda r: (r["rate"], r["server"] != "proxy")):
        cells = (r["server"], f'{r["rate"]:,}', f'{r.get("answered_rps", 0):,}', duration_us(r["p50_us"]),
                 duration_us(r["p90_us"]), duration_us(r["p99_us"]), duration_us(r["p999_us"]),
                 duration_us(r["max_us"]), f'{r.get("queued", 0):,}', f'{r["unanswered"]:,}',
                 f'{r["errors"]:,}', duration_us(r.get("send_lag_p99_us", 0)),
                 f'{r.get("server_cpu", 0):.2f}', f'{r.get("server_wait", 0):.2f}')
        colour = SERVER_COLOUR.get(r["server"], "#333")
        tds = [f'<td style="color:{colour}">{esc(cells[0])}</td>'] + [f"<td>{esc(c)}</td>" for c in cells[1:]]
        if r.get("server_wait", 0) > BUSY_WAIT:
            tds[-1] = f'<td style="color:{BUSY};font-weight:bold">{esc(cells[-1])}</td>'
        if r.get("send_lag_p99_us", 0) > BUSY_LAG_US:
            tds[-3] = f'<td style="color:{BUSY};font-weight:bold">{esc(cells[-3])}</td>'
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return ('<table class="data num"><tr><th>' + "</th><th>".join(head) + "</th></tr>"
            + "".join(rows) + "</table>")


def legend_html():
    items = []
    for server, colour in SERVER_COLOUR.items():
        items.append(f'<span class="key"><svg width="26" height="10"><line x1="0" x2="26" y1="5" y2="5" '
                     f'stroke="{colour}" stroke-width="3"/></svg>{esc(server)}</span>')
    for key, dash in PERCENTILE_DASH.items():
        d = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(f'<span class="key"><svg width="26" height="10"><line x1="0" x2="26" y1="5" y2="5" '
                     f'stroke="#333" stroke-width="2"{d}/></svg>{esc(key.replace("_us", ""))}</span>')
    items.append(f'<span class="key"><svg width="16" height="14"><circle cx="8" cy="7" r="6" fill="none" '
                 f'stroke="{BUSY}" stroke-width="1.5"/></svg>held back by the machine\'s other load: '
                 f'the server waited for a CPU over {BUSY_WAIT:.0%} of the run, or the client\'s '
                 f'send lag p99 was over {duration_us(BUSY_LAG_US)}</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


# --- (c) RSS over the soak ------------------------------------------------------------------------


def read_rss(path):
    samples = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    samples.append((float(parts[0]), float(parts[1])))
    except (OSError, ValueError):
        return []
    return samples


def read_probe(path):
    """scripts/soak-probe.py's lines: (second, miss p99 ms, HGET p99 ms, errors) per window."""
    windows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 10:
                    p_miss, p_fwd = float(parts[3]), float(parts[7])
                    windows.append((float(parts[0]), p_miss if math.isfinite(p_miss) else 0.0,
                                    p_fwd if math.isfinite(p_fwd) else 0.0, int(parts[9])))
    except (OSError, ValueError):
        return []
    return windows


def probe_svg(windows, load_end):
    """The p99 of the probe's misses and forwarded HGETs per window (log scale, ms)."""
    w, h = 1080, 260
    x0, y0, pw, ph = plot_frame(w, h, (70, 20, 20, 50))
    xticks, xmax = linear_ticks(max(s for s, _, _, _ in windows), 10)
    top = max(max(m, f) for _, m, f, _ in windows)
    lo, hi = 0.1, 10 ** math.ceil(math.log10(max(top, 1.0)))
    lx = lambda v: x0 + pw * v / xmax  # noqa: E731
    ly = lambda v: y0 + ph - ph * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="other clients latency over the soak">']
    for t in xticks:
        out.append(f'<line x1="{lx(t):.1f}" x2="{lx(t):.1f}" y1="{y0}" y2="{y0 + ph}" class="grid minor"/>')
        out.append(f'<text x="{lx(t):.1f}" y="{y0 + ph + 16}" class="tick" text-anchor="middle">{t:g}</text>')
    v = lo
    while v <= hi * 1.001:
        out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{ly(v):.1f}" y2="{ly(v):.1f}" class="grid"/>')
        out.append(f'<text x="{x0 - 6}" y="{ly(v) + 4:.1f}" class="tick" text-anchor="end">{v:g} ms</text>')
        v *= 10
    if 0 < load_end < xmax:
        out.append(f'<rect x="{lx(load_end):.1f}" y="{y0}" width="{x0 + pw - lx(load_end):.1f}" height="{ph}" class="warm"/>')
        out.append(f'<text x="{lx(load_end) + 6:.1f}" y="{y0 + 14}" class="hint">load stopped</text>')
    for i, (colour, dash, name) in enumerate(((PROXY, "", "miss p99"), (ANCHOR[0], "7 4", "forwarded HGET p99"))):
        pts = " ".join(f"{lx(win[0]):.1f},{ly(win[1 + i]):.1f}" for win in windows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.8" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{x0 + 10 + 190 * i}" y="{y0 + ph - 8}" class="val" fill="{colour}">{esc(name)}</text>')
    out.append(f'<text x="{x0 + pw / 2}" y="{h - 8}" class="axis" text-anchor="middle">second of the soak '
               f'(end of each 10 s window)</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" class="frame"/>')
    out.append("</svg>")
    return "\n".join(out)


def rss_svg(samples, warmup):
    w, h = 1080, 300
    x0, y0, pw, ph = plot_frame(w, h, (70, 20, 20, 50))
    xticks, xmax = linear_ticks(max(s for s, _ in samples), 10)
    yticks, ymax = linear_ticks(max(m for _, m in samples) * 1.05)
    lx = lambda v: x0 + pw * v / xmax  # noqa: E731
    ly = lambda v: y0 + ph - ph * v / ymax  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="proxy RSS over the soak">']
    for t in xticks:
        out.append(f'<line x1="{lx(t):.1f}" x2="{lx(t):.1f}" y1="{y0}" y2="{y0 + ph}" class="grid minor"/>')
        out.append(f'<text x="{lx(t):.1f}" y="{y0 + ph + 16}" class="tick" text-anchor="middle">{t:g}</text>')
    for t in yticks:
        out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{ly(t):.1f}" y2="{ly(t):.1f}" class="grid"/>')
        out.append(f'<text x="{x0 - 6}" y="{ly(t) + 4:.1f}" class="tick" text-anchor="end">{t:g} MiB</text>')
    if 0 < warmup < xmax:
        out.append(f'<rect x="{x0}" y="{y0}" width="{lx(warmup) - x0:.1f}" height="{ph}" class="warm"/>')
        out.append(f'<text x="{x0 + 6}" y="{y0 + 14}" class="hint">warm-up ({warmup:g} s)</text>')
    pts = " ".join(f"{lx(s):.1f},{ly(m):.1f}" for s, m in samples)
    out.append(f'<polyline points="{pts}" fill="none" stroke="{PROXY}" stroke-width="1.5"/>')
    out.append(f'<text x="{x0 + pw / 2}" y="{h - 8}" class="axis" text-anchor="middle">second of the soak</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" class="frame"/>')
    out.append("</svg>")
    return "\n".join(out)


# --- the page -------------------------------------------------------------------------------------

CSS = """
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; color: #222; margin: 24px;
       max-width: 1120px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
p { font-size: 13px; line-height: 1.45; margin: 4px 0 8px; } .meta { color: #555; }
section { border-top: 2px solid #ddd; padding-top: 4px; }
svg text { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; }
.head { font-size: 13px; font-weight: bold; } .hint { font-size: 11px; fill: #666; }
.wl { font-size: 13px; font-weight: bold; } .who { font-size: 12px; } .val { font-size: 11px; fill: #222; }
.tick { font-size: 11px; fill: #444; } .axis { font-size: 12px; fill: #222; }
.rule { stroke: #e4e4e4; } .grid { stroke: #d8d8d8; } .minor { stroke: #eee; }
.frame { fill: none; stroke: #999; } .diag { stroke: #bbb; stroke-dasharray: 4 4; }
.warm { fill: #f3f3f3; }
.charts { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.legend { font-size: 12px; margin: 6px 0; } .key { margin-right: 16px; white-space: nowrap; }
.key svg { vertical-align: middle; margin-right: 5px; }
table.data { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
table.data td, table.data th { border-bottom: 1px solid #e4e4e4; padding: 3px 8px; text-align: left; }
table.num td + td, table.num th + th { text-align: right; }
.missing { background: #fff6e0; border: 1px solid #e8c77a; padding: 10px 14px; font-size: 14px; }
"""


def panel_workloads(bench, path, forward=None):
    if not bench and not forward:
        return f'<p class="missing">No {esc(path)}: run <code>make bench</code>.</p>'
    bench = bench or {}
    # Section 5's rows (scripts/bench-forward.sh): ProxyRedis beside twemproxy and Redis.
    groups = workload_groups(bench.get("results", []) + (forward or {}).get("results", []))
    return (f'<p>Each workload of the latest <code>make bench</code>: the proxy (blue) beside its '
            f'anchor measured in the same run (orange; grey for a second one). Each small chart has '
            f'its own scale, so compare within a row. req per server CPU-second = requests / CPU '
            f'time the server process used (fair when the one-core load generator limits req/s). '
            f'wrk -c{esc(bench.get("connections", "?"))} -d{esc(bench.get("duration", "?"))} for '
            f'HTTP, redis-benchmark -c 50 for RESP.</p>'
            + workloads_svg(groups) + others_table(bench.get("results", [])))


def panel_open_loop(loop, path):
    if not loop or not loop.get("runs"):
        return (f'<p class="missing">No {esc(path)}: run <code>make bench</code> (or '
                f'<code>scripts/bench-open-loop.sh</code> on its own).</p>')
    runs = loop["runs"]
    for r in runs:
        r.setdefault("seconds", loop.get("seconds", 1))
    return (f'<p>HTTP hits (<code>GET /lookup</code>, 100 cached keys) sent by '
            f'<code>examples/open_loop</code> at fixed rates, {esc(loop.get("seconds"))} s per rate, '
            f'from a pool of {esc(loop.get("connections"))} keep-alive connections with one request '
            f'in flight on each. Open loop: each request is due at its scheduled time whatever '
            f'happened before, and its latency runs from that time to its response, so a server '
            f'that falls behind shows the queue (requests still unanswered 5 s after the last was '
            f'due count at what they had waited: a lower bound). nginx answers the same JSON with a '
            f'fixed 200. Left: p50/p99/p999 per offered rate (log scale). Right: answers per second '
            f'from the start to the last answer; below the diagonal the server did not keep up. '
            f'{esc(loop.get("pinning", ""))}; a server CPU of 1.00 is all of its core.</p>'
            + legend_html()
            + f'<div class="charts">{latency_svg(runs)}{achieved_svg(runs)}</div>'
            + open_loop_table(runs))


def panel_soak(samples, path, warmup, windows=None):
    if not samples:
        return (f'<p class="missing">No soak samples ({esc(path)}): run <code>make soak</code> '
                f'(10 minutes; <code>SOAK_SECONDS=120 make soak</code> for a shorter one).</p>')
    last = samples[-1][0]
    if warmup >= last:  # as scripts/soak.sh does
        warmup = last // 2
    after = [m for s, m in samples if s > warmup]
    summary = (f'after the {warmup:g} s warm-up: min {min(after):.1f} MiB, max {max(after):.1f} MiB'
               if after else "no samples after the warm-up")
    return (f'<p>The proxy\'s RSS, sampled every second by <code>make soak</code> (normal load: '
            f'redis-benchmark and wrk on hits and misses; hostile load: never-reading pipeliners, '
            f'slow senders, huge MGETs, forwarded LRANGEs and SRANDMEMBERs over the reply limit, '
            f'forwarded LRANGEs never read). {len(samples)} samples, {summary}.</p>'
            + rss_svg(samples, warmup) + probe_note(windows, samples))


def probe_note(windows, samples):
    if not windows:
        return '<p>No probe windows (target/soak/probe.txt): an older soak, or it ended early.</p>'
    # The soak's load stops where its probe goes on alone: the RSS samples go on for 20 s more.
    load_end = max(0.0, samples[-1][0] - 20) if samples else 0.0
    errors = sum(e for _, _, _, e in windows)
    return (f'<p>What another client saw meanwhile (scripts/soak-probe.py, one request in flight '
            f'per kind): the p99 per 10 s window of 50 cache misses a second (fresh keys) and 50 '
            f'forwarded HGETs a second; {errors} errors or timeouts in all.</p>'
            + probe_svg(windows, load_end))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="target/bench/results.json")
    ap.add_argument("--forward", default="target/bench/forward.json")
    ap.add_argument("--open-loop", default="target/bench/open-loop.json")
    ap.add_argument("--soak", default="target/soak/rss.txt")
    ap.add_argument("--probe", default="target/soak/probe.txt")
    ap.add_argument("--soak-warmup", type=float, default=float(os.environ.get("SOAK_WARMUP", 60)),
                    help="seconds of the soak left out of its min/max (SOAK_WARMUP, 60)")
    ap.add_argument("--out", default="target/bench/report.html")
    a = ap.parse_args()
    bench, loop, samples = load_json(a.results), load_json(a.open_loop), read_rss(a.soak)
    forward, windows = load_json(a.forward), read_probe(a.probe)
    meta = ""
    if bench:
        meta = (f'{esc(bench.get("cores", "?"))} cores, {esc(bench.get("pinning", ""))}. ')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ProxyRedis benchmark report</title>
<style>{CSS}</style></head><body>
<h1>ProxyRedis benchmark report</h1>
<p class="meta">{meta}Inputs: {esc(a.results)} ({mtime(a.results)}), {esc(a.forward)}
({mtime(a.forward)}), {esc(a.open_loop)}
({mtime(a.open_loop)}), {esc(a.soak)} ({mtime(a.soak)}). Generated
{datetime.datetime.now().strftime("%Y-%m-%d %H:%M")} by scripts/bench-report.py. Absolute figures
move a lot on a shared machine: read each row against its anchor.</p>
<section><h2>(a) Throughput and p99, each workload beside its anchor</h2>
{panel_workloads(bench, a.results, forward)}</section>
<section><h2>(b) Latency against offered load, HTTP hits, open loop</h2>
{panel_open_loop(loop, a.open_loop)}</section>
<section><h2>(c) Proxy RSS over the soak</h2>
{panel_soak(samples, a.soak, a.soak_warmup, windows)}</section>
</body></html>
"""
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"report: {a.out}")


if __name__ == "__main__":
    main()
