"""The proxy's private key and certificate signing request, made with OpenSSL via ctypes.

Why by hand: the `ssl` module cannot make keys or CSRs, and `cryptography` costs ~16 MB in
every sidecar. OpenSSL's libcrypto is already loaded (the `ssl` module links it), so a few
ctypes calls give a P-256 key and a PKCS#10 request without another library in memory.
The key exists only in this process: as an OpenSSL object while signing, then as PEM bytes
the TLS layer loads from an anonymous in-memory file (see contexts.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl  # noqa: F401  (loads libcrypto into the process before we look it up)
from dataclasses import dataclass

_MBSTRING_ASC = 0x1001
_NID_SUBJECT_ALT_NAME = 85
_MAX_CN = 64  # X.509's upper bound for a common name; longer identities go in the SAN only
_BIO_CTRL_INFO = 3


class OpenSSLError(RuntimeError):
    """A libcrypto call failed while making the key or the CSR."""


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    lib = ctypes.CDLL(name)
    c_void_p, c_char_p, c_int, c_long = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_long,
    )
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "EVP_PKEY_Q_keygen": (c_void_p, [c_void_p, c_char_p, c_char_p]),
        "EVP_PKEY_free": (None, [c_void_p]),
        "X509_REQ_new": (c_void_p, []),
        "X509_REQ_free": (None, [c_void_p]),
        "X509_REQ_set_version": (c_int, [c_void_p, c_long]),
        "X509_REQ_get_subject_name": (c_void_p, [c_void_p]),
        "X509_NAME_add_entry_by_txt": (
            c_int,
            [c_void_p, c_char_p, c_int, c_char_p, c_int, c_int, c_int],
        ),
        "X509_REQ_set_pubkey": (c_int, [c_void_p, c_void_p]),
        "EVP_sha256": (c_void_p, []),
        "X509_REQ_sign": (c_int, [c_void_p, c_void_p, c_void_p]),
        "i2d_X509_REQ": (c_int, [c_void_p, ctypes.POINTER(ctypes.c_char_p)]),
        "BIO_s_mem": (c_void_p, []),
        "BIO_new": (c_void_p, [c_void_p]),
        "BIO_free": (c_int, [c_void_p]),
        "BIO_ctrl": (c_long, [c_void_p, c_int, c_long, c_void_p]),
        "PEM_write_bio_PrivateKey": (
            c_int,
            [c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_void_p, c_void_p],
        ),
        "CRYPTO_free": (None, [c_void_p, c_char_p, c_int]),
        "X509V3_EXT_conf_nid": (c_void_p, [c_void_p, c_void_p, c_int, c_char_p]),
        "X509_EXTENSION_free": (None, [c_void_p]),
        "OPENSSL_sk_new_null": (c_void_p, []),
        "OPENSSL_sk_push": (c_int, [c_void_p, c_void_p]),
        "OPENSSL_sk_free": (None, [c_void_p]),
        "X509_REQ_add_extensions": (c_int, [c_void_p, c_void_p]),
    }
    for fn, (restype, argtypes) in signatures.items():
        func = getattr(lib, fn)
        func.restype = restype
        if fn != "EVP_PKEY_Q_keygen":  # variadic: arguments are given per call
            func.argtypes = argtypes
    return lib


_lib: ctypes.CDLL | None = None


def _crypto() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _add_san(lib: ctypes.CDLL, req: int, identity: str) -> None:
    ext = lib.X509V3_EXT_conf_nid(
        None, None, _NID_SUBJECT_ALT_NAME, f"DNS:{identity}".encode("ascii")
    )
    if not ext:
        raise OpenSSLError(f"cannot make a subjectAltName for {identity!r}")
    stack = lib.OPENSSL_sk_new_null()
    try:
        if not stack or lib.OPENSSL_sk_push(stack, ext) <= 0:
            raise OpenSSLError("cannot build the request's extensions")
        if lib.X509_REQ_add_extensions(req, stack) != 1:
            raise OpenSSLError("cannot add the subjectAltName to the request")
    finally:
        if stack:
            lib.OPENSSL_sk_free(stack)
        lib.X509_EXTENSION_free(ext)


@dataclass(frozen=True)
class KeyAndCsr:
    key_pem: bytes  # PKCS#8 PEM, unencrypted: for the TLS layer, never written to disk
    csr_der: bytes


def new_key_and_csr(identity: str) -> KeyAndCsr:
    """A fresh ECDSA P-256 key and a CSR naming `identity` as a SAN DNS name (and as the
    subject CN when it fits in one)."""
    lib = _crypto()
    pkey = lib.EVP_PKEY_Q_keygen(None, None, b"EC", ctypes.c_char_p(b"P-256"))
    if not pkey:
        raise OpenSSLError("EC P-256 key generation failed")
    req = lib.X509_REQ_new()
    bio = None
    try:
        if not req or lib.X509_REQ_set_version(req, 0) != 1:
            raise OpenSSLError("cannot create a certificate request")
        name = lib.X509_REQ_get_subject_name(req)
        if len(identity) <= _MAX_CN and (
            lib.X509_NAME_add_entry_by_txt(
                name, b"CN", _MBSTRING_ASC, identity.encode("ascii"), -1, -1, 0
            )
            != 1
        ):
            raise OpenSSLError(f"cannot set the request's subject to {identity!r}")
        _add_san(lib, req, identity)
        if lib.X509_REQ_set_pubkey(req, pkey) != 1:
            raise OpenSSLError("cannot set the request's public key")
        if lib.X509_REQ_sign(req, pkey, lib.EVP_sha256()) <= 0:
            raise OpenSSLError("cannot sign the request")
        out = ctypes.c_char_p()
        length = lib.i2d_X509_REQ(req, ctypes.byref(out))
        if length <= 0 or not out:
            raise OpenSSLError("cannot encode the request")
        try:
            csr_der = ctypes.string_at(out, length)
        finally:
            lib.CRYPTO_free(out, b"keys.py", 0)
        bio = lib.BIO_new(lib.BIO_s_mem())
        if not bio or lib.PEM_write_bio_PrivateKey(bio, pkey, None, None, 0, None, None) != 1:
            raise OpenSSLError("cannot encode the private key")
        data = ctypes.c_void_p()
        size = lib.BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(data))
        key_pem = ctypes.string_at(data, size)
    finally:
        if bio:
            lib.BIO_free(bio)
        if req:
            lib.X509_REQ_free(req)
        lib.EVP_PKEY_free(pkey)
    return KeyAndCsr(key_pem, csr_der)
