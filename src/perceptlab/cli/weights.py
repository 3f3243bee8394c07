"""``perceptlab weights list | fetch NAME [--from FILE] | path NAME | clean``: the pretrained weights perceptlab uses."""

from __future__ import annotations

import argparse

from perceptlab import weights as w


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, fetch or locate pretrained weights",
                              description=f"Pretrained weights, cached in {w.cache_dir()} ($PERCEPTLAB_CACHE).")  # fmt: skip
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="list known weights, their sources and whether they are cached").set_defaults(run=_list)
    fetch = sub.add_parser("fetch", help="download (or import with --from) and convert weights into the cache")
    fetch.add_argument("name", choices=tuple(w.SPECS), metavar="NAME", help=", ".join(w.SPECS))
    fetch.add_argument("--from", dest="file", metavar="FILE",
                       help="a local copy of one of the sources (checked by sha256), e.g. vgg16-397923af.pth")  # fmt: skip
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.set_defaults(run=_fetch)
    path = sub.add_parser("path", help="print the cached file of NAME (fetching it if needed)")
    path.add_argument("name", choices=tuple(w.SPECS), metavar="NAME", help=", ".join(w.SPECS))
    path.set_defaults(run=_path)
    sub.add_parser("clean", help="remove downloaded archives and leftover temporary files from the cache "
                                 "(converted weights stay)").set_defaults(run=_clean)  # fmt: skip


def _list(args: argparse.Namespace) -> int:
    for spec in w.SPECS.values():
        cached = w.cached_path(spec.name)
        state = f"cached: {cached}" if cached.is_file() else "not cached"
        print(f"{spec.name:12s} {spec.description}\n{'':12s} {state}; licence: {spec.license}")
        for source in spec.sources:
            print(f"{'':12s} source: {source.describe()}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    print(w.fetch(args.name, file=args.file, force=args.force))
    return 0


def _path(args: argparse.Namespace) -> int:
    print(w.fetch(args.name))
    return 0


def _clean(args: argparse.Namespace) -> int:
    removed = w.clean()
    for path, size in removed.items():
        print(f"removed {path} ({size / 2**20:.1f} MB)")
    print(f"{len(removed)} file(s), {sum(removed.values()) / 2**20:.1f} MB removed from {w.cache_dir()}")
    return 0
