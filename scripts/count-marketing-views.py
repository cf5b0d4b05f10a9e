#!/usr/bin/env python3
"""Independent count of the shipped `marketing_views` metric in an Apache or
nginx combined access log, for checking `bpm-edge replay` against.

It shares no code or list with bpm-edge: the match rule is re-written here
(GET/HEAD of `/`, `/pricing` or `/blog/**`, answered 2xx or 304) and every
user agent is judged by the hand-written rules below, made by reading the
user agents of the bench log one by one. A view counts when its agent is a
person's browser (the shipped `count` of a referral metric).

    python3 scripts/count-marketing-views.py LOG [--show]
"""
import collections
import re
import sys
from urllib.parse import unquote

LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+)[^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"'
)

# Words a person's browser never sends; a user agent with one of them is
# automated (crawler, feed fetcher, preview, monitor, archiver).
AUTOMATED_WORDS = re.compile(
    r"bot\b|bot/|bot;|crawl|spider|slurp|feed|fetcher|rss|aggregator|archive|"
    r"favicon|proxy|ezooms|livejournal|liferea|reeder|distilator|robosourcer|"
    r"discoverer|preview|monitor|headless|phantomjs|oldreader|\+https?://",
    re.I,
)
# Someone to write to, or a subscriber count: what fetchers put in their name.
CONTACT = re.compile(r"@[a-z0-9-]+\.[a-z]", re.I)
SUBSCRIBERS = re.compile(r"\b\d+ (readers|subscribers)\b", re.I)
# Apps and HTTP libraries: not a browser, not a crawler.
APP = re.compile(
    r"^(okhttp|dalvik|python-|curl|wget|go-http-client|java/|apache-httpclient|"
    r"libwww|axios|node-fetch|instagram )|cfnetwork/|indy library",
    re.I,
)
# What a browser's user agent starts with (desktop, mobile and feature phones).
BROWSER = re.compile(
    r"^(mozilla/|opera/|[A-Z]+[-_][A-Z0-9-]+/|[A-Z0-9]+ profile/midp|maxx_maui|lava\.)",
    re.I,
)


def judge(ua):
    if ua.strip() in ("", "-"):
        return "bot"
    if AUTOMATED_WORDS.search(ua) or CONTACT.search(ua) or SUBSCRIBERS.search(ua):
        return "bot"
    if APP.search(ua):
        return "client"
    if BROWSER.search(ua):
        return "browser"
    return "bot"


def marketing_page(path):
    path = unquote(path.split("?", 1)[0].split("#", 1)[0])
    path = re.sub(r"/+", "/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    return path in ("/", "/pricing", "/blog") or path.startswith("/blog/")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--show" in sys.argv
    kinds = collections.Counter()
    agents = collections.Counter()
    with open(args[0], encoding="utf-8", errors="replace") as log:
        for line in log:
            m = LINE.match(line)
            if not m:
                continue
            method, target, status, ua = m.groups()
            status = int(status)
            if method not in ("GET", "HEAD") or not marketing_page(target):
                continue
            if not (200 <= status < 300 or status == 304):
                continue
            kind = judge(ua)
            kinds[kind] += 1
            agents[(kind, ua)] += 1
    total = sum(kinds.values())
    print(
        f"marketing_views: {kinds['browser']} (browser); "
        f"client {kinds['client']}, bot {kinds['bot']}, all {total}"
    )
    if show:
        for (kind, ua), n in agents.most_common():
            print(f"{n:5} {kind:7} {ua[:150]}")


if __name__ == "__main__":
    main()
