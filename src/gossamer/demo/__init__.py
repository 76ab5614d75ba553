"""Gossamer's demo application: a small voting app to run inside the mesh.

In the spirit of Linkerd's emojivoto: `web` (an HTTP/1.1 front end) calls `emoji` (the
catalogue) and `voting` (the tally) over gRPC, and `vote-bot` drives steady traffic at `web`.
Voting for one item always fails, so the mesh's success rates have a failing path to show.
Each component runs as `python -m gossamer.demo <component>`, configured by `DEMO_*`
environment variables (read only in `config`); `manifest.workloads()` describes the whole
deployment for `gossamer demo`.

May import the generated contracts (`gen/`) and `gossamer.core`; nothing from the mesh itself
(proxy, control plane): the demo is an ordinary application the mesh knows nothing about.
"""
