"""TLS facts of an https target: the default handshake (version, cipher, certificate chain and
expiry against the system CAs or a CA file), and whether legacy protocols or weak ciphers are
accepted when offered."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import warnings
from urllib.parse import urlparse

EXPIRY_MARGIN_DAYS = 30
WEAK_CIPHERS = "RC4:3DES:DES:NULL:EXPORT:MD5:aNULL:eNULL"
GOOD_VERSIONS = ("TLSv1.2", "TLSv1.3")
OUTCOME = {True: "accepted", False: "refused", None: "not offerable by this machine's OpenSSL"}


def _handshake(host: str, port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def _legacy_context(maximum: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    """A client that offers what a good server must refuse (certificate not checked: the
    question is only whether the handshake completes)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # offering the deprecated versions is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


def _accepted(host: str, port: int, maximum: ssl.TLSVersion, ciphers: str) -> bool | None:
    """True if the server completes the handshake, False if it refuses, None if this
    machine's OpenSSL cannot even offer it."""
    try:
        context = _legacy_context(maximum, ciphers)
    except ssl.SSLError:
        return None
    try:
        _handshake(host, port, context).close()
    except ssl.SSLError as exc:
        return None if "no protocols available" in str(exc) or "NO_CIPHERS" in str(exc) \
            else False
    except OSError:
        return False
    return True


def tls_findings(url: str, ca_file: str | None) -> tuple[list[str], str]:
    """(problems, a line of facts) for the https endpoint of `url`."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 443
    try:
        secure = _handshake(host, port, ssl.create_default_context(cafile=ca_file))
    except ssl.SSLCertVerificationError as exc:
        return [f"certificate not valid: {exc.verify_message}"], "verification failed"
    with secure:
        version, cipher = secure.version(), secure.cipher()
        certificate = secure.getpeercert() or {}
    findings = [f"negotiated {version}"] if version not in GOOD_VERSIONS else []
    facts = [f"{version} {cipher[0] if cipher else '?'}"]
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(str(certificate["notAfter"])),
                                        dt.UTC)
    days_left = (expires - dt.datetime.now(dt.UTC)).days
    facts.append(f"certificate valid, expires in {days_left} days")
    if days_left < EXPIRY_MARGIN_DAYS:
        findings.append(f"certificate expires in {days_left} days (< {EXPIRY_MARGIN_DAYS})")
    legacy_findings, legacy_facts = _legacy(host, port)
    return findings + legacy_findings, "; ".join(facts + legacy_facts)


def _legacy(host: str, port: int) -> tuple[list[str], list[str]]:
    """Whether TLS 1.0, TLS 1.1 or only weak ciphers get a handshake."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        offers = (("TLS 1.0", ssl.TLSVersion.TLSv1, "DEFAULT"),
                  ("TLS 1.1", ssl.TLSVersion.TLSv1_1, "DEFAULT"),
                  ("weak ciphers", ssl.TLSVersion.TLSv1_2, WEAK_CIPHERS))
    findings, facts = [], []
    for label, maximum, ciphers in offers:
        accepted = _accepted(host, port, maximum, ciphers)
        if accepted:
            findings.append(f"accepts {label}")
        facts.append(f"{label} {OUTCOME[accepted]}")
    return findings, facts
