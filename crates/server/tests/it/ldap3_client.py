#!/usr/bin/env python3
"""A client of countersign's LDAP front built on Python's ldap3 (Debian's python3-ldap3), as an
application developer would use it. Prints one JSON object.

  ldap3_client.py URL CA exop OID HEXVALUE
      sends one extended operation with a raw value
  ldap3_client.py URL CA sasl AUTHID OTP [AUTHZID]
      binds with UNBOUNDID-DELIVERED-OTP (credentials BER-encoded here, spec section 5), then
      asks Who Am I on the same connection

CA is a PEM file for ldaps:// URLs, or "-".
"""
import binascii
import json
import ssl
import sys

from ldap3 import Connection, Server, Tls
from ldap3.protocol.sasl.sasl import send_sasl_negotiation


def tlv(tag, value):
    n = len(value)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(b)]) + b
    return head + value


def connect(url, ca):
    tls = Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED) if ca != "-" else None
    conn = Connection(Server(url, tls=tls, use_ssl=url.startswith("ldaps:"), connect_timeout=10), receive_timeout=30)
    conn.open()
    return conn


def main():
    url, ca, command = sys.argv[1], sys.argv[2], sys.argv[3]
    conn = connect(url, ca)
    if command == "exop":
        oid, value = sys.argv[4], binascii.unhexlify(sys.argv[5])
        conn.extended(oid, value)
        r = conn.result
        raw = r.get("responseValue")
        out = {
            "result": r["result"],
            "message": r["message"],
            "name": r.get("responseName") or None,
            "value": binascii.hexlify(raw).decode() if raw else None,
        }
    elif command == "sasl":
        authn, otp = sys.argv[4].encode(), sys.argv[5].encode()
        creds = tlv(0x80, authn)
        if len(sys.argv) > 6:
            creds += tlv(0x81, sys.argv[6].encode())
        creds = tlv(0x30, creds + tlv(0x82, otp))
        conn.sasl_mechanism = "UNBOUNDID-DELIVERED-OTP"
        r = send_sasl_negotiation(conn, None, creds)
        out = {"result": r["result"], "message": r["message"], "whoami": None}
        if r["result"] == 0:
            out["whoami"] = conn.extend.standard.who_am_i()
    else:
        raise SystemExit("unknown command " + command)
    conn.unbind()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
