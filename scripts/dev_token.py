"""Make an RSA key pair and signed dev JWTs for local gateway runs and tests.

.venv/bin/python scripts/dev_token.py keys .keys/            # writes jwt_private/public.pem
.venv/bin/python scripts/dev_token.py token .keys/jwt_private.pem alice --username Alice
JWT_PUBLIC_KEY_PATH=.keys/jwt_public.pem .venv/bin/parlour-gateway
"""

from __future__ import annotations

import argparse
from pathlib import Path

from parlour_gateway.dev_tokens import generate_keypair, make_token


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    keys = sub.add_parser("keys", help="write an RSA key pair")
    keys.add_argument("directory", type=Path)
    tok = sub.add_parser("token", help="print a signed JWT")
    tok.add_argument("private_key", type=Path)
    tok.add_argument("sub", help="the user id")
    tok.add_argument("--username")
    tok.add_argument("--roles", default="user", help="comma-separated")
    tok.add_argument("--expires-in", type=float, default=3600, help="seconds")
    tok.add_argument("--issuer")
    tok.add_argument("--audience")
    args = parser.parse_args()
    if args.cmd == "keys":
        private, public = generate_keypair(args.directory)
        print(f"private: {private}\npublic:  {public}")
        return
    print(
        make_token(
            args.private_key.read_text(),
            args.sub,
            username=args.username,
            roles=[r for r in args.roles.split(",") if r],
            expires_in=args.expires_in,
            issuer=args.issuer,
            audience=args.audience,
        )
    )


if __name__ == "__main__":
    main()
