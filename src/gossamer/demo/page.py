"""The front end's HTML page: the items to vote for and the leaderboard, rendered on the server.

Pure string building (everything escaped), so it is tested without a server. No JavaScript:
each item is a link to `/api/vote?choice=…`, which is enough to click through the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from gossamer.demo.catalog import Item

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; color: #222; }
h1 { font-weight: 600; } .items a { font-size: 2rem; text-decoration: none; margin: .2rem; }
table { border-collapse: collapse; } td { padding: .2rem .8rem; border-bottom: 1px solid #ddd; }
"""


def render_index(items: Sequence[Item], leaderboard: Sequence[tuple[Item, int]]) -> str:
    links = "\n".join(
        f'<a href="/api/vote?{escape(urlencode({"choice": item.shortcode}))}" '
        f'title="{escape(item.shortcode)}">{escape(item.unicode)}</a>'
        for item in items
    )
    rows = "\n".join(
        f"<tr><td>{escape(item.unicode)}</td><td>{escape(item.shortcode)}</td><td>{votes}</td></tr>"
        for item, votes in leaderboard
    )
    if not rows:
        rows = '<tr><td colspan="3">no votes yet</td></tr>'
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Gossamer demo: vote for your favourite</title>
<style>{_STYLE}</style></head>
<body>
<h1>Vote for your favourite</h1>
<p class="items">
{links}
</p>
<h2>Leaderboard</h2>
<table>
{rows}
</table>
</body>
</html>
"""
