"""Outbound traffic to services: routing, per-request balancing, retries, timeouts.

Assembles the pure pieces (routing, balance, retry) with the control-plane watches
(policy, destination) into one `OutboundService` per original destination. The protocol
handlers ask it, per request or per connection, where to send and how.
"""
