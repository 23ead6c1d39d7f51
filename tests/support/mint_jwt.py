#!/usr/bin/python3
"""Mint a JWT for engram's tests with an independent implementation.

Valid tokens are made by PyJWT (Debian's python3-jwt 2.6 with
python3-cryptography), so a test that accepts them shows engram agrees with
another library. The attack tokens PyJWT refuses to make (alg "none", an
HS256 token keyed with an EdDSA public key's PEM text) are built by hand.

Usage:
  mint_jwt.py --keys FILE --kid KID --sub SUBJECT [options]

The key file is engram's (docs/auth.md):
  {"issuer": "...", "audience": "...",
   "keys": [{"kid": "...", "alg": "HS256", "secret_b64url": "..."},
            {"kid": "...", "alg": "EdDSA", "public_key_pem": "...",
             "private_key_pem": "..."}]}
An EdDSA key needs its private_key_pem to sign (not for the attacks).

Options:
  --keys FILE              key file to read (required)
  --kid KID                key to sign with; also the header's kid (required)
  --sub SUBJECT            the sub claim (required; "" leaves it out)
  --roles R1,R2            the roles claim, comma-separated (default: none, [])
  --agent ID               the agent claim (agent-scoped token)
  --jti ID                 the jti claim (default: none)
  --exp-in SECONDS         exp = now + SECONDS (default 3600; negative: expired)
  --no-exp                 leave exp out
  --nbf-in SECONDS         add nbf = now + SECONDS
  --iat-in SECONDS         iat = now + SECONDS (default 0)
  --no-iat                 leave iat out
  --now UNIX_SECONDS       the "now" the times above count from (default: the clock)
  --iss ISSUER             the iss claim (default: the key file's issuer)
  --aud AUDIENCE           the aud claim (default: the key file's audience);
                           repeat it to make aud an array
  --alg none|HS256|EdDSA   header alg (default: the key's own); "none" makes an
                           unsigned token (empty signature segment)
  --hs256-with-public-pem  algorithm confusion: header alg HS256 and kid KID
                           (an EdDSA key), HMAC-SHA256 keyed with the bytes of
                           that key's public_key_pem text
  --claims-json JSON       an object merged into the claims last (override or add)
  --header-json JSON       an object merged into the header last; an "alg" in
                           it changes only the header, the signature is still
                           made with the key's own algorithm

Prints the token and a newline on stdout. Exit status: 0 on success, 1 when
the key file or key cannot be used, 2 on bad options.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def by_hand(header: dict, claims: dict, sign) -> str:
    """A compact JWS whose signature is sign(signing_input) (bytes)."""
    signing_input = b64url(compact(header)) + "." + b64url(compact(claims))
    return signing_input + "." + b64url(sign(signing_input.encode("ascii")))


def sign_with(alg: str, key: bytes, data: bytes) -> bytes:
    if alg == "HS256":
        return hmac.new(key, data, hashlib.sha256).digest()
    return serialization.load_pem_private_key(key, password=None).sign(data)


def die(message: str) -> None:
    print(f"mint_jwt.py: {message}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv):
    p = argparse.ArgumentParser(
        usage="mint_jwt.py --keys FILE --kid KID --sub SUBJECT [options]",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--roles", default="")
    p.add_argument("--agent")
    p.add_argument("--jti")
    exp = p.add_mutually_exclusive_group()
    exp.add_argument("--exp-in", type=int, default=3600)
    exp.add_argument("--no-exp", action="store_true")
    p.add_argument("--nbf-in", type=int)
    iat = p.add_mutually_exclusive_group()
    iat.add_argument("--iat-in", type=int, default=0)
    iat.add_argument("--no-iat", action="store_true")
    p.add_argument("--now", type=int)
    p.add_argument("--iss")
    p.add_argument("--aud", action="append")
    p.add_argument("--alg", choices=["none", "HS256", "EdDSA"])
    p.add_argument("--hs256-with-public-pem", action="store_true")
    p.add_argument("--claims-json")
    p.add_argument("--header-json")
    args = p.parse_args(argv)
    if args.hs256_with_public_pem and args.alg not in (None, "HS256"):
        p.error("--hs256-with-public-pem makes an HS256 token; drop --alg")
    return p, args


def json_object_arg(p, name, text):
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        p.error(f"{name}: {e}")
    if not isinstance(value, dict):
        p.error(f"{name} must be a JSON object")
    return value


def main(argv) -> int:
    p, args = parse_args(argv)
    extra_claims = json_object_arg(p, "--claims-json", args.claims_json)
    extra_header = json_object_arg(p, "--header-json", args.header_json)
    try:
        with open(args.keys, encoding="utf-8") as f:
            key_file = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f"{args.keys}: {e}")
    key = next((k for k in key_file.get("keys", []) if k.get("kid") == args.kid), None)
    if key is None:
        die(f"no key {args.kid!r} in {args.keys}")

    now = args.now if args.now is not None else int(time.time())
    claims = {"iss": args.iss if args.iss is not None else key_file.get("issuer")}
    if args.aud is None:
        claims["aud"] = key_file.get("audience")
    else:
        claims["aud"] = args.aud[0] if len(args.aud) == 1 else args.aud
    if args.sub:
        claims["sub"] = args.sub
    claims["roles"] = [r for r in args.roles.split(",") if r]
    if args.agent is not None:
        claims["agent"] = args.agent
    if args.jti is not None:
        claims["jti"] = args.jti
    if not args.no_iat:
        claims["iat"] = now + args.iat_in
    if args.nbf_in is not None:
        claims["nbf"] = now + args.nbf_in
    if not args.no_exp:
        claims["exp"] = now + args.exp_in
    claims.update(extra_claims)

    header = {"kid": args.kid}
    header.update(extra_header)
    if args.hs256_with_public_pem:
        if key.get("alg") != "EdDSA" or "public_key_pem" not in key:
            die(f"--hs256-with-public-pem needs an EdDSA key; {args.kid!r} is {key.get('alg')}")
        # PyJWT refuses a PEM-looking HMAC secret, which is exactly the attack.
        secret = key["public_key_pem"].encode("utf-8")
        token = by_hand({"alg": "HS256", "typ": "JWT", **header}, claims,
                        lambda data: hmac.new(secret, data, hashlib.sha256).digest())
    elif args.alg == "none":
        token = by_hand({"alg": "none", "typ": "JWT", **header}, claims, lambda data: b"")
    else:
        alg = args.alg or key.get("alg")
        if alg != key.get("alg"):
            die(f"key {args.kid!r} is {key.get('alg')}, cannot sign {alg}")
        if alg == "HS256":
            signing_key = b64url_decode(key["secret_b64url"])
        elif alg == "EdDSA":
            if "private_key_pem" not in key:
                die(f"key {args.kid!r} has no private_key_pem")
            signing_key = key["private_key_pem"].encode("utf-8")
        else:
            die(f"key {args.kid!r} has unknown alg {alg!r}")
        if "alg" in extra_header:
            # PyJWT would sign with the header's alg; keep the key's, so the
            # token tests a verifier's allow-list rather than this script.
            token = by_hand({"alg": alg, "typ": "JWT", **header}, claims,
                            lambda data: sign_with(alg, signing_key, data))
        else:
            token = jwt.encode(claims, signing_key, algorithm=alg, headers=header)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
