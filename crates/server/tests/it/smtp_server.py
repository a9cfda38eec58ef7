#!/usr/bin/env python3
"""A real SMTP server for countersign's tests, built on aiosmtpd (Debian's python3-aiosmtpd).

Listens on 127.0.0.1 on a free port, prints "READY <port>" once it accepts connections, and
writes each message it receives to --dir as <n>.json (envelope, raw data, whether TLS and
authentication were used, and the number of the connection that carried it, counted from 0).
Options: --starttls CERT KEY (STARTTLS required), --tls CERT KEY (implicit TLS),
--auth USER:PASSWORD (AUTH PLAIN/LOGIN required), --drop-after-message (close each connection
right after answering its message, as a server ending idle sessions does).
"""
import argparse
import asyncio
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Saver:
    def __init__(self, outdir, drop_after_message):
        self.outdir = outdir
        self.counter = itertools.count()
        self.drop_after_message = drop_after_message

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "connection": server.connection_number,
        }
        tmp = os.path.join(self.outdir, f".{n:06d}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.outdir, f"{n:06d}.json"))
        if self.drop_after_message:
            # Runs once the answer below is written (nothing awaits in between).
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 OK"


def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    p.add_argument("--drop-after-message", action="store_true")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()

    starttls_ctx = context(*a.starttls) if a.starttls else None
    implicit_ctx = context(*a.tls) if a.tls else None
    user, password = (a.auth.split(":", 1) if a.auth else (None, None))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    handler = Saver(a.dir, a.drop_after_message)
    connections = itertools.count()

    def factory():
        smtp = SMTP(
            handler,
            hostname="countersign-test-smtp",
            tls_context=starttls_ctx,
            require_starttls=starttls_ctx is not None,
            authenticator=authenticator if user else None,
            auth_required=user is not None,
            auth_require_tls=starttls_ctx is not None or implicit_ctx is not None,
        )
        smtp.connection_number = next(connections)
        return smtp

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=a.port, ssl=implicit_ctx, reuse_address=True)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
