"""Read-planner benchmark (prints figures; not a test).

Builds an image estate on a moto server and measures, side by side in one run:

- tierscan (`--no-perceptual`, with perceptual hashing, and `--no-signatures`: pHash and dHash without
  near-duplicate signatures, the perceptual work the naive scanner does), through the real CLI against moto;
- a naive scanner: GET every object whole, then SHA-256, a full-decode pHash and EXIF, with a process pool
  of the same size as tierscan's;
- Debian's `rclone` for the exact part: `rclone md5sum` and `rclone dedupe --by-hash --dedupe-mode list`.

Figures: bytes read as a share of bytes stored, GET requests, wall time, objects per second, peak RSS, client
and moto server CPU (moto shares the machine: its CPU per GET bounds every scanner here; its ranged GETs
read only the range, as S3's do, through `benchmarks/moto_ranged.py`, unless `--stock-moto`);
then whether the exact groups and EXIF findings match the naive scanner's.

    python benchmarks/read_plan.py --objects 20000 --max-mb 8      # 20,000 objects (~26 GB on moto;
                                                                   # 20-30 minutes in all on 2 cores)
    python benchmarks/read_plan.py --objects 20000 --max-mb 8 --keep /tmp/estate.json   # build, keep moto
    python benchmarks/read_plan.py --reuse /tmp/estate.json        # measure on the kept estate
    python benchmarks/read_plan.py --objects 1000 --max-mb 8       # quick
    python benchmarks/read_plan.py --reuse /tmp/estate.json --repeat 3   # three passes, medians

A machine's speed wanders between rows measured minutes apart, so `--repeat N` repeats the measurement N
times (each pass: every tierscan row, then the naive scanner) and reports each row's median with every
pass's wall time, and the objects/s ratio pass by pass as well as by the medians. The figures, and what
bounds each row, are in docs/benchmarks.md ("Read plan against a naive scanner").

Estate: a few hundred synthetic photos (smooth gradients and shapes, EXIF with make, model, GPS on a
third) re-encoded and resized; object sizes (lognormal, median 800 KB, 50 KB to max-mb) vary with random
bytes after EOI (decoders ignore them; the head of the file is untouched, as in camera trailers). 60%
unique photos (hot), 10% near-duplicate variants (cool), 30% exact copies in cool and cold tiers, a few
GLACIER copies. Uploads go as transfer tools send them: objects of 5 MiB or more multipart in 5 MiB parts
(no MD5 ETag; copies made the same way share the original's multipart ETag), except one copy in ten that
another tool uploaded in one PUT (an MD5 ETag beside its original's multipart ETag: only reading tells).
Objects are made as they are uploaded and moto keeps them in temporary files, so memory stays small.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

BUCKETS = {"bench-hot": "STANDARD", "bench-cool": "STANDARD_IA", "bench-cold": "GLACIER_IR"}
PART = 5 * 1024 * 1024
# A search of 16,384 codes against themselves: past the all-pairs cut-off, so the compiled kernels run;
# and the area-resize kernels, which every image's hashes use (`tierscan.scanner.fingerprint.area_resize`).
WARM_KERNELS = ("import numpy as np; from tierscan.scanner.group.hamming_index import HammingIndex; "
                "from tierscan.scanner.fingerprint.area_resize import area_resize; "
                "c = np.arange(1 << 14, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15); "
                "HammingIndex(c).search(c, 8); "
                "[area_resize(np.zeros((300, 400), t), (256, 191)) for t in (np.uint8, np.float32)]")


def _photo(seed: int, gps: bool):
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    w, h = rnd.choice([(1600, 1200), (1200, 900), (2000, 1500), (1024, 768)])
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rnd.randrange(w), rnd.randrange(h)
        r = rnd.randrange(40, w // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rnd.randrange(256) for _ in range(3)))
    exif = Image.Exif()
    exif[0x010F] = rnd.choice(["Canon", "NIKON CORPORATION", "Apple", "SONY"])
    exif[0x0110] = f"Model {seed % 17}"
    if gps:
        exif[0x8825] = {1: "N", 2: (22.0, float(rnd.randrange(60)), 0.0), 3: "E", 4: (114.0, 10.0, 0.0)}
    return img, exif


def _encode(img, exif, quality: int, target: int, rnd: random.Random) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif)
    data = buf.getvalue()
    return data + rnd.randbytes(max(0, target - len(data)))  # after EOI: decoders ignore it


@dataclass(frozen=True)
class Spec:
    """One object of the estate; its bytes are made when it is uploaded (`materialize`), never all at once."""

    bucket: str
    key: str
    seed: int  # an original's recipe; a copy's is its original's
    kind: str  # unique | near | copy
    size: int
    whole_put: bool  # uploaded in one PUT whatever its size (a real MD5 ETag)
    source: int = -1  # a copy's original, as an index into the spec list


def build_specs(n: int, max_bytes: int, seed: int = 7) -> list[Spec]:
    """Unique photos (60%), near variants (10%), exact copies in other tiers (30%)."""
    rnd = random.Random(seed)

    def sizes() -> int:
        return int(min(max_bytes, max(50_000, rnd.lognormvariate(13.6, 1.0))))

    specs = [Spec("bench-hot", f"photos/{i:06d}.jpg", i, "unique", sizes(), False) for i in range(int(n * 0.6))]
    specs += [Spec("bench-cool", f"web/{i:06d}.jpg", i, "near", sizes(), False) for i in range(int(n * 0.1))]
    originals = len(specs)
    for i in range(n - originals):
        src = rnd.randrange(originals)
        # Copies are made with the tool that uploaded the originals (same multipart threshold and part
        # size, so the same ETag), except one in ten that another tool uploaded in one PUT.
        name = specs[src].key.rsplit("/", 1)[1]
        specs.append(Spec(rnd.choice(["bench-cool", "bench-cold"]), f"copies/{i:06d}-{name}",
                          specs[src].seed, "copy", specs[src].size, i % 10 == 0, src))
    return specs


def materialize(spec: Spec, bases: int) -> bytes:
    """The bytes of an original (a copy's are its original's: see `upload`)."""
    rnd = random.Random(spec.seed * 2 + (spec.kind == "near"))
    img, exif = _photo(spec.seed % bases, gps=spec.seed % bases % 3 == 0)
    if spec.kind == "near":
        variant = img.crop((8, 8, img.width - 8, img.height - 8)).resize((img.width // 2, img.height // 2))
        return _encode(variant, exif, 70, spec.size, rnd)
    scale = 1 - (spec.seed // bases) * 0.01
    if scale < 1:
        img = img.resize((max(64, int(img.width * scale)), max(64, int(img.height * scale))))
    return _encode(img, exif, 92 - (spec.seed // bases) % 10, spec.size, rnd)


def upload(endpoint: str, specs: list[Spec], archive: int, scratch: Path) -> dict[str, int]:
    """Upload the estate, originals first (kept in `scratch` for their copies). Objects of `PART` bytes or
    more go up multipart in `PART`-sized parts, as transfer tools do, unless `whole_put`. Returns counts
    and the bytes that exact matching must read whole under the trust rules: per content, once per
    multipart ETag when its objects do not all share one identity."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing", config=Config(max_pool_connections=64))
    for b in BUCKETS:
        s3.create_bucket(Bucket=b)
    bases = max(10, min(300, len(specs) // 10))

    def put(bucket: str, key: str, data: bytes, whole: bool, cls: str) -> None:
        if whole or len(data) < PART:
            s3.put_object(Bucket=bucket, Key=key, Body=data, StorageClass=cls)
            return
        up = s3.create_multipart_upload(Bucket=bucket, Key=key, StorageClass=cls)
        parts = []
        for n, off in enumerate(range(0, len(data), PART), 1):
            r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=data[off:off + PART])
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})

    def original(i: int) -> None:
        spec = specs[i]
        data = materialize(spec, bases)
        (scratch / str(i)).write_bytes(data)
        put(spec.bucket, spec.key, data, spec.whole_put, BUCKETS[spec.bucket])

    def copy(spec: Spec) -> None:
        put(spec.bucket, spec.key, (scratch / str(spec.source)).read_bytes(), spec.whole_put, BUCKETS[spec.bucket])

    firsts = [i for i, s in enumerate(specs) if s.kind != "copy"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(original, firsts))
        list(pool.map(copy, [s for s in specs if s.kind == "copy"]))
        list(pool.map(lambda i: put("bench-cold", f"archive/{i:04d}.jpg", (scratch / str(i)).read_bytes(), False,
                                    "GLACIER"), range(archive)))
    identities: dict[int, set[str]] = defaultdict(set)  # original -> "md5" or "mpu" (one multipart ETag each)
    for i, s in enumerate(specs):
        identities[s.source if s.kind == "copy" else i].add("md5" if s.whole_put or s.size < PART else "mpu")
    floor = sum(specs[i].size for i, kinds in identities.items() if kinds == {"md5", "mpu"})
    multipart = sum(1 for s in specs if not s.whole_put and s.size >= PART)
    return {"multipart": multipart, "floor": floor, "stored": sum(s.size for s in specs)
            + sum(specs[i].size for i in range(archive))}


# --- the naive scanner ------------------------------------------------------------------------------
def _naive_cpu(data: bytes):
    import imagehash
    from PIL import Image

    from tierscan.scanner.fingerprint.exif import read_metadata

    sha = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        ph = str(imagehash.phash(img.convert("RGB")))
    except (OSError, ValueError, SyntaxError, EOFError):  # an undecodable image: no pHash
        ph = None
    meta = read_metadata(data)
    e = meta.exif
    return sha, ph, (e.make, e.model, e.gps_lat, e.gps_lon, e.datetime_original)


def naive(endpoint: str, workers: int, out: Path) -> None:
    """GET every object whole (16 in flight), then SHA-256, full-decode pHash and EXIF in a process pool;
    at most 32 objects held between their GET and their result, as tierscan bounds its own."""
    import threading

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing", config=Config(max_pool_connections=32))
    keys = []
    for b in BUCKETS:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
            keys += [(b, o["Key"]) for o in page.get("Contents", [])]
    stats = {"gets": 0, "bytes": 0, "objects": len(keys)}
    results = {}
    with ProcessPoolExecutor(workers) as cpu, ThreadPoolExecutor(16) as io_pool:
        held = threading.BoundedSemaphore(32)

        def one(bk):
            b, k = bk
            held.acquire()
            try:
                data = s3.get_object(Bucket=b, Key=k)["Body"].read()
            except (BotoCoreError, ClientError):
                held.release()
                return bk, None, 1
            future = cpu.submit(_naive_cpu, data)
            future.add_done_callback(lambda _: held.release())
            return bk, future, len(data)

        for (b, k), fut, nbytes in io_pool.map(one, keys):
            stats["gets"] += 1
            if fut is None:
                continue
            stats["bytes"] += nbytes
            results[f"s3://{b}/{k}"] = fut.result()
    out.write_text(json.dumps({"stats": stats, "results": results}))


# --- measuring --------------------------------------------------------------------------------------
def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall time and peak RSS (MiB, the largest process of the run) of a child command."""
    code = ("import resource,subprocess,sys,time;t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
            "w=time.perf_counter()-t;u=resource.getrusage(resource.RUSAGE_CHILDREN);r=u.ru_maxrss;"
            "c=u.ru_utime+u.ru_stime;"
            "sys.stdout.write(p.stdout);sys.stderr.write(p.stderr+f'\\n@@{w} {r} {p.returncode} {c}')")
    before = server_cpu(SERVER_PID[0])
    proc = subprocess.run([sys.executable, "-c", code, *argv], check=False, capture_output=True, text=True,
                          env=env)
    SERVER_CPU[0] = server_cpu(SERVER_PID[0]) - before
    wall, rss, rc, cpu = proc.stderr.rsplit("@@", 1)[1].split()
    if int(rc) != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    CPU[0] = float(cpu)
    return float(wall), int(rss) // 1024, proc


CPU = [0.0]  # client CPU seconds (user + system, all processes) of the last `timed` run
SERVER_CPU = [0.0]  # the moto server's CPU seconds during the last `timed` run
SERVER_PID: list[int | None] = [None]


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the moto server has used so far; 0 when its process is unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Row:
    """One scanner's figures in one round."""

    bytes_read: int
    gets: int
    wall: float
    objects: int
    rss: int  # MiB
    cpu: float  # client CPU s, all processes
    server: float  # moto's CPU s meanwhile

    @property
    def rate(self) -> float:
        return self.objects / self.wall


TIERSCAN_ROWS = (("tierscan --no-perceptual", ["--no-perceptual"]), ("tierscan (perceptual)", []),
                 ("tierscan --no-signatures", ["--no-signatures"]))
NAIVE = "naive (GET all, full decode)"


def measure_round(workers: int, targets: list[str], env: dict[str, str], endpoint: str, work: Path,
                  runs: dict[str, list[Row]]) -> None:
    """The tierscan rows, then the naive scanner, each appended to `runs`; then whether each tierscan row
    found the naive scanner's exact groups and EXIF."""
    tierscan = str(Path(sys.executable).with_name("tierscan"))
    reports = {}
    for name, extra in TIERSCAN_ROWS:
        db = work / f"{len(reports)}.db"
        db.unlink(missing_ok=True)
        wall, rss, proc = timed([tierscan, "scan", *targets, "--db", str(db), "--format", "json",
                                 "--workers", str(workers), *extra], env)
        report = json.loads(proc.stdout)
        reports[name] = (report, db)
        s = report["scan"]
        runs[name].append(Row(s["bytes_read"], s["requests"], wall, report["totals"]["objects"], rss, CPU[0],
                              SERVER_CPU[0]))
        print(f"{name}: {s['bytes_read']:,} bytes, {s['requests']:,} GETs, {wall:.1f} s, peak RSS {rss} MiB",
              flush=True)
    out = work / "naive.json"
    wall, rss, _ = timed([sys.executable, __file__, "--naive-child", endpoint, str(workers), str(out)], env)
    naive_out = json.loads(out.read_text())
    ns = naive_out["stats"]
    runs[NAIVE].append(Row(ns["bytes"], ns["gets"], wall, ns["objects"], rss, CPU[0], SERVER_CPU[0]))
    print(f"naive: {ns['bytes']:,} bytes, {ns['gets']:,} GETs, {wall:.1f} s, peak RSS {rss} MiB", flush=True)
    # Same exact groups and EXIF findings as the naive scanner (over the objects it could read).
    naive_res = naive_out["results"]
    by_sha = defaultdict(set)
    for uri, (sha, _, _) in naive_res.items():
        by_sha[sha].add(uri)
    naive_groups = sorted(sorted(g) for g in by_sha.values() if len(g) > 1)
    for name, (report, db) in reports.items():
        groups = sorted(sorted(m["uri"] for m in g["members"] if m["uri"] in naive_res)
                        for g in report["groups"] if g["kind"] == "exact")
        groups = sorted(g for g in groups if len(g) > 1)
        inv = subprocess.run([tierscan, "inventory", "--db", str(db), "--format", "jsonl"], check=False,
                             capture_output=True, text=True, env=env).stdout
        diffs = 0
        for line in inv.splitlines():
            r = json.loads(line)
            if r["uri"] not in naive_res or r["status"] != "fingerprinted":
                continue
            e = r["exif"] or {}
            gps = e.get("gps") or {}
            mine = [e.get("make"), e.get("model"), gps.get("lat"), gps.get("lon"), e.get("datetime_original")]
            diffs += mine != list(naive_res[r["uri"]][2])
        print(f"{name}: exact groups {len(groups)} vs naive {len(naive_groups)}, identical: "
              f"{groups == naive_groups}; EXIF differences: {diffs}")


def report_table(runs: dict[str, list[Row]], stored: int, floor: int) -> None:
    """Each scanner's median row (by wall time; the rounds' wall times beside it when there are several),
    then the targets: bytes against the naive scanner's, and objects/s against it, round by round (rows of
    one round ran minutes apart) and by the medians."""
    cores = os.cpu_count() or 1
    rounds = len(runs[NAIVE])
    median = {name: sorted(rows, key=lambda r: r.wall)[(len(rows) - 1) // 2] for name, rows in runs.items()}
    print(f"\n{'scanner':<44} {'bytes read':>14} {'% stored':>9} {'GETs':>8} {'wall s':>8} {'obj/s':>8} "
          f"{'peak RSS MiB':>13} {'client CPU s':>13} {'CPU ms/obj':>11} {'server CPU s':>13} "
          f"{'CPU floor s':>12}" + ("  wall s of each round" if rounds > 1 else ""))
    for name, r in median.items():
        walls = " / ".join(f"{x.wall:.1f}" for x in runs[name]) if len(runs[name]) > 1 else ""
        print(f"{name:<44} {r.bytes_read:>14,} {100 * r.bytes_read / stored:>8.2f}% {r.gets:>8,} {r.wall:>8.1f} "
              f"{r.rate:>8.1f} {r.rss:>13,} {r.cpu:>13.1f} {1000 * r.cpu / max(r.objects, 1):>11.1f} "
              f"{r.server:>13.1f} {(r.cpu + r.server) / cores:>12.1f}  {walls}")
    if rounds > 1:
        print(f"(the median of {rounds} rounds by wall time, each row's own figures)")
    if SERVER_PID[0]:
        print(f"(server: the moto process, on the same {cores} cores; CPU floor: (client + server CPU) / "
              "cores, the least wall time this much work takes here)")
    naive_row = median[NAIVE]
    share = 100 * median[TIERSCAN_ROWS[0][0]].bytes_read / naive_row.bytes_read
    print(f"\n--no-perceptual bytes read / naive: {share:.2f}% "
          f"(target <= 5%); floor (contents whose copies do not share one identity, read whole once): "
          f"{100 * floor / naive_row.bytes_read:.2f}%")
    for name, _ in TIERSCAN_ROWS[1:]:
        row = median[name]
        each = " / ".join(f"{r.rate / n.rate:.2f}x" for r, n in zip(runs[name], runs[NAIVE], strict=True))
        print(f"{name}: objects/s / naive: {row.rate / naive_row.rate:.2f}x (target >= 3x)"
              + (f"; round by round {each}" if rounds > 1 else "")
              + "; client CPU per object, naive / tierscan: "
              + f"{naive_row.cpu / naive_row.objects / (row.cpu / row.objects):.2f}x "
              "(the ceiling when the store is not the bottleneck)")
        if row.server and row.gets:
            cpu_floor = (row.cpu + row.server) / cores
            print(f"  server CPU per GET {1000 * row.server / row.gets:.2f} ms; naive wall / this row's CPU "
                  f"floor: {naive_row.wall / cpu_floor:.2f}x (the best this work could do here)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--max-mb", type=float, default=8.0)
    ap.add_argument("--archive", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--keep", type=Path, metavar="FILE",
                    help="build the estate, leave moto running and write its endpoint and counts to FILE; measure "
                         "nothing (a 20,000-object estate takes longer to build than to measure)")
    ap.add_argument("--reuse", type=Path, metavar="FILE", help="measure the estate a --keep run left (moto stays up)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="measure N rounds of every tierscan row and the naive scanner, one round after the other, "
                         "and report each row's median (the VM's speed wanders between rows)")
    ap.add_argument("--stock-moto", action="store_true",
                    help="stock moto, which reads the whole object for every ranged GET (default: "
                         "benchmarks/moto_ranged.py, which reads only the range, as S3 does)")
    args = ap.parse_args()
    from emulators import Emulator, start_moto

    work = Path(tempfile.mkdtemp(prefix="readplan-"))
    if args.reuse:
        kept = json.loads(args.reuse.read_text())
        emu = Emulator("moto", kept["endpoint"], None, Path(os.devnull), pid=kept.get("pid"))
        emu.env = kept["env"]
        counts = kept["counts"]
    else:
        # Objects over 64 KiB live in moto's temporary files, not its memory: 20,000 objects are ~26 GB.
        os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(64 * 1024)
        server = None if args.stock_moto else [sys.executable, str(REPO / "benchmarks" / "moto_ranged.py")]
        emu = start_moto(log_dir=work, server=server)
    SERVER_PID[0] = emu.process.pid if emu.process else emu.pid
    try:
        if not args.reuse:
            t = time.perf_counter()
            specs = build_specs(args.objects, int(args.max_mb * 1024 * 1024))
            scratch = work / "originals"
            scratch.mkdir()
            counts = upload(emu.endpoint, specs, args.archive, scratch)
            shutil.rmtree(scratch)
            counts.update(objects=len(specs) + args.archive, archive=args.archive, seconds=time.perf_counter() - t)
            del specs
            if args.keep:
                args.keep.write_text(json.dumps({"endpoint": emu.endpoint, "env": emu.env, "counts": counts,
                                                 "pid": emu.process.pid if emu.process else emu.pid,
                                                 "stock_moto": args.stock_moto}))
                print(f"estate kept at {emu.endpoint}: {args.keep}")
                return
        stored, floor = counts["stored"], counts["floor"]
        stock = kept.get("stock_moto", True) if args.reuse else args.stock_moto
        served = "stock moto (whole-object reads for ranges)" if stock else "moto, ranged GETs read the range"
        print(f"estate: {counts['objects']:,} objects, {stored / 2**20:,.1f} MiB stored "
              f"(built and uploaded in {counts['seconds']:.0f} s; {counts['multipart']} multipart, "
              f"{counts['archive']} GLACIER); server: {served}")
        env = {**os.environ, **emu.env, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        targets = [f"s3://{b}" for b in BUCKETS]
        # The Hamming index kernels compile on an install's first grouping of more than a few thousand images
        # (10-20 s, then cached beside the installed package): done here first, so that no row pays a
        # one-off compile. Run outside the repository, so that the installed package is the one imported.
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", WARM_KERNELS], check=True, cwd=work)
        print(f"index and resize kernels compiled or loaded before the timed runs: {time.perf_counter() - t:.1f} s")
        runs: dict[str, list[Row]] = defaultdict(list)  # scanner -> its row of each round
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"round {round_no} of {args.repeat}", flush=True)
            measure_round(args.workers, targets, env, emu.endpoint, work, runs)
        rclone = shutil.which("rclone")
        rclone_groups = None
        if rclone:
            renv = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
            renv.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                        RCLONE_CONFIG_BENCH_ENDPOINT=emu.endpoint, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="testing",
                        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="testing", RCLONE_CONFIG_BENCH_REGION="us-east-1",
                        RCLONE_CONFIG="/dev/null")
            remote = "bench:"
            t0 = time.perf_counter()
            sums = ""
            peak = 0
            cpu = server = 0.0
            for b in BUCKETS:
                _, r, p = timed([rclone, "md5sum", remote + b], renv)
                cpu += CPU[0]
                server += SERVER_CPU[0]
                sums += "".join(f"{line[:32]}  {b}/{line[34:]}\n" for line in p.stdout.splitlines())
                peak = max(peak, r)
                timed([rclone, "dedupe", "--by-hash", "--dedupe-mode", "list", remote + b], renv)
                cpu += CPU[0]
                server += SERVER_CPU[0]
            rwall = time.perf_counter() - t0
            by = defaultdict(set)
            for line in sums.splitlines():
                if line[:32].strip():
                    by[line[:32]].add("s3://" + line[34:])
            rclone_groups = [v for v in by.values() if len(v) > 1]
            hashed = sum(1 for line in sums.splitlines() if line[:32].strip())
            runs[f"rclone md5sum+dedupe ({hashed} of {len(sums.splitlines())} hashed)"].append(
                Row(0, 0, rwall, len(sums.splitlines()), peak, cpu, server))
        report_table(runs, stored, floor)
        if rclone_groups is not None:
            print(f"rclone: {len(rclone_groups)} groups by MD5 within buckets' listings (multipart objects have no "
                  "MD5 for rclone; dedupe lists per bucket only)")
    finally:
        if not (args.keep or args.reuse):
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--naive-child":
        naive(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
