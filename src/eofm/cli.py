"""`eofm` command: the library's steps for use outside Snakemake.

eofm sample 2020-01 out.zarr          one month of the offline ERA5-like sample
eofm qc out.zarr --month 2020-01      QC report of a store (exit 1 if it fails)
eofm describe out.zarr                variables, dims, units and provenance
eofm verify [stores…]                 stores against their manifests' digests (exit 1 on any)
eofm config-schema [--check]          regenerate the config schema and README key tables
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from eofm import __version__
from eofm.config import Era5Grid, Era5Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eofm`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="eofm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"eofm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    era5 = Era5Settings()  # the config's defaults, so the CLI and the workflow agree

    sample = commands.add_parser("sample", help="write one month of sample data to Zarr")
    sample.add_argument("month", help="YYYY-MM")
    sample.add_argument("out", help="path of the Zarr store to write")
    sample.add_argument("--seed", type=int, default=era5.seed)
    sample.add_argument("--nlat", type=int, default=era5.grid.nlat)
    sample.add_argument("--nlon", type=int, default=era5.grid.nlon)

    qc = commands.add_parser("qc", help="check a store against the variable catalogue")
    qc.add_argument("store")
    qc.add_argument("--month", help="YYYY-MM: also check that every time step is present")
    qc.add_argument("--step-hours", type=int, default=era5.step_hours)

    describe = commands.add_parser("describe", help="summarise a store")
    describe.add_argument("store")

    verify = commands.add_parser(
        "verify", help="check stores against the sha256 digests in their manifests"
    )
    verify.add_argument("stores", nargs="*", help="stores to check (default: every manifest's)")
    verify.add_argument(
        "--manifest-dir",
        default="resources/manifests",
        help="where the manifests are (default: resources/manifests)",
    )

    generate = commands.add_parser(
        "config-schema",
        help="write workflow/schemas/config.schema.yaml and config/README.md's key tables "
        "from eofm.config",
    )
    generate.add_argument("--root", default=".", help="the repository (default: here)")
    generate.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )

    args = parser.parse_args(argv)
    if args.command == "config-schema":
        from eofm.config import stale_files, write_generated

        if args.check:
            stale = stale_files(args.root)
            for path in stale:
                print(f"{path}: out of date; run `eofm config-schema`", file=sys.stderr)
            return 1 if stale else 0
        for path in write_generated(args.root):
            print(f"wrote {path}")
        return 0
    if args.command == "sample":
        from eofm.data.ingest import ingest_sample_month, sample_grid

        era5.grid = Era5Grid(nlat=args.nlat, nlon=args.nlon)
        path = ingest_sample_month(args.month, args.out, sample_grid(era5), args.seed)
        print(path)
        return 0
    if args.command == "verify":
        from eofm.data.manifest import verify_stores

        rows = verify_stores(args.manifest_dir, args.stores)
        for store, status, detail in rows:
            print(f"{status:8} {store}  {detail}")
        if not rows:
            print(f"no manifest found under {args.manifest_dir}", file=sys.stderr)
        return 0 if rows and all(status == "OK" for _, status, _ in rows) else 1
    if args.command == "qc":
        from eofm.data.qc import check_store
        from eofm.data.sample import month_times

        expected = month_times(args.month, args.step_hours) if args.month else None
        report = check_store(args.store, expected_times=expected)
        print(json.dumps(report, indent=2))
        return 0 if report["passed"] else 1
    from eofm.data.store import describe_store

    print(describe_store(args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
