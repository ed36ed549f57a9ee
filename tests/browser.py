"""How the end-to-end test and scripts/bench_dashboard.py run a browser: Debian's chromium
(never one downloaded by `playwright install`), headless, with nothing reaching the network."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
