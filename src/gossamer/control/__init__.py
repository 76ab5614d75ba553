"""The control plane: the store of resources and (later) identity, destination and policy.

May import `gossamer.core` and third-party libraries; never `gossamer.proxy` or
`gossamer.local` (local mode uses the control plane, not the other way round). Controllers
are written against `gossamer.control.store.Store` and never know which backend they hold.
"""
