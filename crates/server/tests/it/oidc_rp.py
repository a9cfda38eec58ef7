"""A real OpenID Connect relying party (Debian's python3-authlib) for the tests.

Subcommands, each printing one JSON object:
  login     BASE CLIENT SECRET REDIRECT USER PASSWORD
            discovery, an authorization URL with PKCE (S256), state and nonce, the sign-in form
            driven over plain HTTP with the session cookie; prints the code, verifier, nonce
            and whether the state came back (or where the sign-in stopped).
  exchange  BASE CLIENT SECRET REDIRECT CODE VERIFIER NONCE AUTH
            the token request (AUTH: basic | post | none), then the ID token checked as a client must:
            signature from the JWKS, iss, aud, exp, nonce; then /userinfo with the access token.
"""

import json
import re
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt


def discover(base):
    return requests.get(base + "/.well-known/openid-configuration", timeout=10).json()


def login(base, client, secret, redirect, user, password):
    meta = discover(base)
    verifier = generate_token(48)
    nonce = generate_token(20)
    rp = OAuth2Session(client, secret or None, redirect_uri=redirect,
                       scope="openid profile email", code_challenge_method="S256")
    url, state = rp.create_authorization_url(meta["authorization_endpoint"],
                                             code_verifier=verifier, nonce=nonce)
    browser = requests.Session()
    page = browser.get(url, timeout=10)
    if not page.url.startswith(base + "/flow/"):
        return {"stopped": page.url, "status": page.status_code}
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    action = re.search(r'<form id="signin" method="post" action="([^"]+)"', page.text).group(1)
    answer = browser.post(base + action, data={"csrf": csrf, "username": user, "password": password},
                          allow_redirects=False, timeout=30)
    location = answer.headers.get("location", "")
    if not location.startswith(redirect):
        return {"stopped": location or answer.url, "status": answer.status_code}
    query = dict(re.findall(r"[?&]([^=&]+)=([^&]*)", location))
    return {"code": query.get("code"), "state_ok": query.get("state") == state,
            "iss": requests.utils.unquote(query.get("iss", "")),
            "verifier": verifier, "nonce": nonce, "callback": location}


def exchange(base, client, secret, redirect, code, verifier, nonce, auth):
    meta = discover(base)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
            "code_verifier": verifier}
    if auth == "basic":
        reply = requests.post(meta["token_endpoint"], data=form, auth=(client, secret), timeout=10)
    elif auth == "none":
        # A public client names itself; PKCE proves it is the one that asked.
        form.update({"client_id": client})
        reply = requests.post(meta["token_endpoint"], data=form, timeout=10)
    else:
        form.update({"client_id": client, "client_secret": secret})
        reply = requests.post(meta["token_endpoint"], data=form, timeout=10)
    body = reply.json()
    if reply.status_code != 200:
        return {"status": reply.status_code, "error": body.get("error"),
                "www_authenticate": reply.headers.get("www-authenticate")}
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    claims = jwt.decode(body["id_token"], JsonWebKey.import_key_set(jwks))
    claims.validate()  # exp, iat, and the rest authlib checks
    checks = {
        "iss": claims["iss"] == meta["issuer"],
        "aud": claims["aud"] == client,
        "nonce": claims.get("nonce") == nonce,
    }
    info = requests.get(meta["userinfo_endpoint"],
                        headers={"Authorization": "Bearer " + body["access_token"]}, timeout=10)
    return {"status": 200, "checks": checks, "claims": dict(claims),
            "token_type": body.get("token_type"), "cache_control": reply.headers.get("cache-control"),
            "userinfo": info.json(), "access_token": body["access_token"]}


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "login":
        out = login(*args)
    elif command == "exchange":
        out = exchange(*args)
    else:
        raise SystemExit("unknown command " + command)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
