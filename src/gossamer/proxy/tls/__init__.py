"""TLS for the proxy: its key and CSR, its TLS contexts, and ClientHello inspection.

Built on the `ssl` module and the OpenSSL it is linked against, not on `cryptography`:
importing `cryptography` costs about 16 MB of RSS, more than half of a sidecar's budget.
"""
