"""``maskpurify serve``: a local web page to try the purifier and the gaze reader (see :mod:`maskpurify.web`)."""

from __future__ import annotations

import argparse
import sys

from maskpurify.errors import UserError

HELP = "a local web page to try it: drop a face photo or an eye crop, see it purified and its gaze read"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this computer only; 0.0.0.0 opens the "
                             "page to the network, without any authentication)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one and prints the URL)")
    parser.add_argument("--device", default="auto", help="torch device: cpu, cuda, cuda:1 or auto (default auto: "
                        "cuda when available)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"refuse uploads larger than this (default {DEFAULT_MAX_UPLOAD_MB:g}); images are also "
                             "limited to 8192x8192 pixels")
    parser.add_argument("--quiet", action="store_true", help="no line per request")


def run(args: argparse.Namespace) -> int:
    from maskpurify.web import PurifyServer, PurifyService

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: choose 0..65535 (0 picks a free port)")
    if not args.max_upload_mb > 0:
        raise UserError(f"--max-upload-mb {args.max_upload_mb:g}: must be positive")
    try:  # bind first: a port in use fails before the networks load
        server = PurifyServer(None, args.host, args.port, int(args.max_upload_mb * (1 << 20)), quiet=args.quiet)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    try:
        server.service = PurifyService.load(args.device)
        print(f"serving on {server.url}", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"note: --host {args.host} makes the page reachable from other computers", file=sys.stderr)
        print("press Ctrl-C to stop", file=sys.stderr, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
        if server.service is not None:
            server.service.close()
    return 0
