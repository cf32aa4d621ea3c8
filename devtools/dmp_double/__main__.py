"""`python -m devtools.dmp_double --port N --ca-bundle CA.pem --data-dir DIR [--tls-cert C --tls-key K
[--client-ca CA]]` — serve the DMP double until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from . import codes
from .server import DEFAULT_MAX_BODY, DEFAULT_REPOSITORY_ID, Config, DmpDouble, make_server
from .vihf import load_ca_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dmp_double", description="Double local du DMP (XDS.b)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--ca-bundle", type=Path, required=True, help="CA(s) du certificat de signature du VIHF (PEM)"
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--client-ca", type=Path, help="exige un certificat client TLS émis par cette CA")
    parser.add_argument("--repository-id", default=DEFAULT_REPOSITORY_ID)
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument("--no-cda-xsd", action="store_true", help="ne pas valider les CDA contre le XSD")
    parser.add_argument("--codes", choices=("auto", "builtin"), default="auto")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert et --tls-key vont ensemble")
    if args.client_ca is not None and args.tls_cert is None:
        parser.error("--client-ca exige --tls-cert/--tls-key")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s dmp-double %(message)s"
    )
    codes.use_builtin_tables(args.codes == "builtin")
    config = Config(
        data_dir=args.data_dir,
        ca_certs=load_ca_bundle(args.ca_bundle.read_bytes()),
        repository_id=args.repository_id,
        max_body=args.max_body,
        cda_xsd=not args.no_cda_xsd,
    )
    app = DmpDouble(config)
    server = make_server(
        app,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheme = "https" if args.tls_cert else "http"
    print(f"DMP double prêt sur {scheme}://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
